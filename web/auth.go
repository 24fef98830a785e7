package web

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/packet"
)

// Tokens are JWTs signed with HS256: sub is the user id, name the display
// name, exp the expiry. Any system that holds the same secret can issue them,
// which is how an existing app plugs its own users in.

// claims is the token payload.
type claims struct {
	Name string `json:"name,omitempty"`
	jwt.RegisteredClaims
}

// Tokens issues and verifies user tokens.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	parser *jwt.Parser
}

// NewTokens returns a token issuer and verifier for secret.
func NewTokens(secret []byte, ttl time.Duration) *Tokens {
	return &Tokens{
		secret: secret,
		ttl:    ttl,
		parser: jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Second)),
	}
}

// Issue signs a token for u.
func (t *Tokens) Issue(u packet.User, now time.Time) (string, error) {
	c := claims{Name: u.Name, RegisteredClaims: jwt.RegisteredClaims{
		Subject:   u.ID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
	}}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.secret)
}

// Verify checks a token and returns its user. A token without a name shows
// its user id as the name.
func (t *Tokens) Verify(token string) (packet.User, error) {
	var c claims
	_, err := t.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return t.secret, nil })
	if err != nil {
		msg := "the token is invalid"
		if errors.Is(err, jwt.ErrTokenExpired) {
			msg = "the token has expired"
		}
		return packet.User{}, apierr.Refuse(ErrUnauthorized, "%s", msg)
	}
	if c.Subject == "" || !validUserID(c.Subject) {
		return packet.User{}, apierr.Refuse(ErrUnauthorized, "the token names no valid user")
	}
	name := c.Name
	if name == "" || !packet.ValidText(name, maxNameRunes) {
		name = c.Subject
	}
	return packet.User{ID: c.Subject, Name: name}, nil
}

const maxNameRunes = 32

// validUserID accepts the ids other systems are likely to use (numbers,
// uuids, slugs) and nothing that could confuse key names.
func validUserID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '-' || r == '_' || r == '.' || r == ':' || r == '@':
		default:
			return false
		}
	}
	return true
}

const userKey = "hongbao.user"

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) string {
	h := r.Header.Get(echo.HeaderAuthorization)
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// requireUser is middleware that admits requests with a valid bearer token.
func (a *App) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok := bearer(c.Request())
		if tok == "" {
			return apierr.Refuse(ErrUnauthorized, "send Authorization: Bearer <token>")
		}
		u, err := a.tokens.Verify(tok)
		if err != nil {
			return err
		}
		c.Set(userKey, u)
		return next(c)
	}
}

func userOf(c echo.Context) packet.User {
	u, _ := c.Get(userKey).(packet.User)
	return u
}

// requireAdmin admits requests that carry the admin token. With no admin
// token configured the admin API is off.
func (a *App) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if a.cfg.AdminToken == "" {
			return apierr.Refuse(ErrForbidden, "the admin API is disabled (set HONGBAO_ADMIN_TOKEN)")
		}
		if !constantTimeEqual(bearer(c.Request()), a.cfg.AdminToken) {
			return apierr.Refuse(ErrUnauthorized, "send Authorization: Bearer <admin token>")
		}
		return next(c)
	}
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
