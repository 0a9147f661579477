package support

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"

	"github.com/gin-gonic/gin"

	"github.com/qrswitch/qrswitch/internal/httpapi"
	"github.com/qrswitch/qrswitch/internal/wire"
)

// The console is plain HTML, CSS and JavaScript, embedded in the binary: no
// build step, no CDN, nothing fetched from anywhere but the switch itself.
// It talks to the support API with the user's Basic-auth credentials, which
// its login form keeps in a JavaScript variable for the life of the page
// (never in storage or a cookie): a reload or "Log out" forgets them.
//
//go:embed console
var consoleFiles embed.FS

// consoleHeaders keep the page to itself: scripts, styles and data only
// from the switch (so no inline script can run, whatever a record
// contains), no framing, no referrer, no caching of what it shows.
var consoleHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"X-Frame-Options":        "DENY",
	"Referrer-Policy":        "no-referrer",
	"Cache-Control":          "no-store",
}

func mountConsole(r gin.IRouter) {
	files, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err) // the directory is embedded: it exists
	}
	serve := func(c *gin.Context, name string) {
		b, err := fs.ReadFile(files, name)
		if err != nil {
			httpapi.Fail(c, http.StatusNotFound, wire.NewErrorDetail(wire.FunctionNotSupported, "No such console file", "", ""))
			return
		}
		for k, v := range consoleHeaders {
			c.Header(k, v)
		}
		ctype := mime.TypeByExtension(path.Ext(name))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		c.Data(http.StatusOK, ctype, b)
	}
	r.GET("/console", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/console/") })
	r.GET("/console/", func(c *gin.Context) { serve(c, "index.html") })
	r.GET("/console/:file", func(c *gin.Context) { serve(c, c.Param("file")) })
}

// consoleHeader marks the console's own API requests.
const consoleHeader = "X-Qrswitch-Console"

// quietForConsole drops the Basic challenge (WWW-Authenticate) from the
// answers to the console's requests, so that a mistyped password shows the
// console's own message rather than the browser's login dialog, which
// would then hold the credentials where "Log out" cannot forget them.
func quietForConsole(c *gin.Context) {
	if c.GetHeader(consoleHeader) != "" {
		c.Writer = &noChallenge{ResponseWriter: c.Writer}
	}
	c.Next()
}

type noChallenge struct{ gin.ResponseWriter }

func (w *noChallenge) drop() { w.Header().Del("WWW-Authenticate") }

func (w *noChallenge) WriteHeader(code int) { w.drop(); w.ResponseWriter.WriteHeader(code) }
func (w *noChallenge) WriteHeaderNow()      { w.drop(); w.ResponseWriter.WriteHeaderNow() }
func (w *noChallenge) Write(b []byte) (int, error) {
	w.drop()
	return w.ResponseWriter.Write(b)
}
func (w *noChallenge) WriteString(s string) (int, error) {
	w.drop()
	return w.ResponseWriter.WriteString(s)
}
