package web

import (
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// contentSecurityPolicy fits the demo page: its scripts and styles are files
// of its own (no inline script or style element, no style attribute, no
// eval), its icons are data: SVGs, and it talks only to its own host, over
// fetch and a WebSocket. connect-src names ws: and wss: of the host
// explicitly because browsers that predate CSP 3 do not count them as
// 'self'. It goes on every response: the API serves no page, so the policy
// costs it nothing, and an error page is a page too.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// securityHeaders sets the headers every response carries.
func securityHeaders() []echo.MiddlewareFunc {
	return []echo.MiddlewareFunc{
		middleware.SecureWithConfig(middleware.SecureConfig{
			// "0" turns off the legacy XSS auditor, which could itself be
			// abused to blank out parts of a page; the CSP does the work.
			XSSProtection:      "0",
			ContentTypeNosniff: "nosniff",
			XFrameOptions:      "DENY",
			ReferrerPolicy:     "no-referrer",
			// HSTS is sent only over TLS (or behind a proxy that says so with
			// X-Forwarded-Proto), where browsers believe it; subdomains are
			// not this server's to speak for.
			HSTSMaxAge:            365 * 24 * 3600,
			HSTSExcludeSubdomains: true,
		}),
		func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				c.Response().Header().Set("Content-Security-Policy", csp(c.Request().Host))
				c.Response().Header().Set("Cross-Origin-Opener-Policy", "same-origin")
				return next(c)
			}
		},
	}
}

// csp is contentSecurityPolicy with connect-src for host's WebSocket. A
// Host that is not a plain host[:port] gets 'self' only, so a request
// cannot write its own directives into the policy.
func csp(host string) string {
	connect := "; connect-src 'self'"
	if plainHost(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return contentSecurityPolicy + connect
}

func plainHost(host string) bool {
	if host == "" || len(host) > 255 {
		return false
	}
	for _, r := range host {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			r == '.' || r == '-' || r == ':' || r == '[' || r == ']'
		if !ok {
			return false
		}
	}
	return true
}
