package gateway

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/corral-run/corral/api"
	"github.com/corral-run/corral/bus/control"
	"github.com/corral-run/corral/client/wire"
)

// ErrorBody is every error the gateway answers: the sentence that says
// what could not be done, and the HTTP status.
type ErrorBody struct {
	Error string `json:"error"`
	Code  int    `json:"code"`
}

// maxBody bounds a request body: a spawn's metadata (at most 128 KiB),
// a message sent to a process (the bus's 1 MiB messages at most).
const maxBody = 1 << 20

// writeTimeout bounds writing an answer to a slow reader.
const writeTimeout = time.Minute

// gzipAbove is the size from which a JSON answer is compressed when the
// client takes gzip: a list of 1,000 processes shrinks tenfold.
const gzipAbove = 8 << 10

// httpError is an error with its HTTP status.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// statusOf is the HTTP status of err: its own, the code of its kind
// (api.Code: 400, 403, 404, 409, 503, 500), 504 for a timeout and 502 for
// a node that does not answer.
func statusOf(err error) int {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.Is(err, control.ErrTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, control.ErrUnreachable):
		return http.StatusBadGateway
	}
	return api.Code(err)
}

// writeError answers err as an ErrorBody.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	writeJSON(w, r, code, ErrorBody{Error: err.Error(), Code: code})
}

// writeJSON answers v as JSON with status code.
func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		code = http.StatusInternalServerError
		buf.Reset()
		_ = json.NewEncoder(&buf).Encode(ErrorBody{Error: "cannot encode the answer: " + err.Error(), Code: code})
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if buf.Len() >= gzipAbove && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
		w.WriteHeader(code)
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		_, _ = zw.Write(buf.Bytes())
		_ = zw.Close()
		return
	}
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.TrimSpace(q) != "q=0" {
			return true
		}
	}
	return false
}

// readBody reads a request body of at most maxBody bytes: 413 beyond.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errorf(http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes", maxBody)
		}
		return nil, errorf(http.StatusBadRequest, "cannot read the request body: %v", err)
	}
	return b, nil
}

// decodeBody reads a JSON object into v: an empty body is an empty
// object; anything else than exactly one object, or a field v does not
// have, is a 400 that says so.
func decodeBody(w http.ResponseWriter, r *http.Request, what string, v any) error {
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	body := bytes.TrimSpace(b)
	if len(body) == 0 {
		return nil
	}
	if body[0] != '{' {
		return errorf(http.StatusBadRequest, "%s: bad request body: expected a JSON object, got %s", what, wire.ValueKind(body))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "%s: bad request body: %v", what, err)
	}
	if dec.InputOffset() != int64(len(body)) {
		return errorf(http.StatusBadRequest, "%s: bad request body: more after the JSON object (at byte %d)", what, dec.InputOffset())
	}
	return nil
}

// jsonContent reports whether the request says its body is JSON. Every
// request that changes something must: an HTML form on another site can
// post to the gateway without asking (with the browser's cookie), but not
// with this content type.
func jsonContent(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}
