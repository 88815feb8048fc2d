// Package dashboard holds the files of Corral's dashboard, embedded in the
// binary: a page, a script and a style sheet, written without a framework
// and fetching nothing from elsewhere, so it works offline. Package
// bus/gateway serves them at / and the data they show under /api/v1/.
package dashboard

import (
	"embed"
	"io/fs"
)

//go:embed files
var files embed.FS

// Files are the dashboard's files: index.html, app.js, app.css.
func Files() fs.FS {
	sub, err := fs.Sub(files, "files")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	return sub
}
