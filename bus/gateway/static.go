package gateway

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/corral-run/corral/bus/gateway/dashboard"
)

// staticFile is one of the dashboard's files, ready to serve: as it is
// and gzipped, with its ETag.
type staticFile struct {
	ctype     string
	plain, gz []byte
	etag      string
}

// csp lets the dashboard load its own files and talk to its own origin,
// nothing else: no inline script, no other site.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// dashboard serves the dashboard's files at /: / is index.html.
func (g *Gateway) dashboard() http.Handler {
	files := map[string]*staticFile{}
	fsys := dashboard.Files()
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		_, _ = zw.Write(b)
		_ = zw.Close()
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		files["/"+p] = &staticFile{ctype: ctype, plain: b, gz: gz.Bytes(), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	files["/"] = files["/index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := files[r.URL.Path]
		switch {
		case f == nil:
			writeError(w, r, errorf(http.StatusNotFound, "no such page: %s", r.URL.Path))
			return
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, r, errorf(http.StatusMethodNotAllowed, "%s %s: the dashboard's files are read with GET", r.Method, r.URL.Path))
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.ctype)
		h.Set("Cache-Control", "no-cache") // revalidated: cheap with the ETag
		h.Set("ETag", f.etag)
		h.Set("Content-Security-Policy", csp)
		h.Add("Vary", "Accept-Encoding")
		if strings.Contains(r.Header.Get("If-None-Match"), f.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		body := f.plain
		if acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			body = f.gz
		}
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}
