package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/hongbao-dev/hongbao/internal/apierr"
	"github.com/hongbao-dev/hongbao/packet"
)

// Tokens are JWTs: sub is the user id, name the display name (else
// preferred_username, else the id), exp the expiry. Any system that holds
// the same secret can issue HS256 ones, and with a JWKS an app's identity
// provider signs RS256 or EdDSA ones (jwks.go): that is how an existing app
// plugs its own users in. A token's alg picks how it is verified: HS256
// only ever with the secret, RS256 and EdDSA only with a JWKS key made for
// that alg, anything else (none included) not at all.

// claims is the token payload.
type claims struct {
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	jwt.RegisteredClaims
}

// tokenLeeway is the clock skew allowed on exp, nbf and iat.
const tokenLeeway = 5 * time.Second

// Tokens issues and verifies user tokens.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	parser *jwt.Parser
	// idp holds the identity provider's keys, and idpCheck the iss and
	// aud its tokens must carry; nil without a JWKS.
	idp      *jwks
	idpCheck *jwt.Validator
}

// NewTokens returns a token issuer and verifier for secret.
func NewTokens(secret []byte, ttl time.Duration) *Tokens {
	return &Tokens{
		secret: secret,
		ttl:    ttl,
		parser: jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithLeeway(tokenLeeway)),
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

// Verify is VerifyContext without a deadline of its own.
func (t *Tokens) Verify(token string) (packet.User, error) {
	return t.VerifyContext(context.Background(), token)
}

// VerifyContext checks a token and returns its user. A token without a name
// shows its user id as the name. ctx bounds the JWKS fetch a token with an
// unknown kid may cause.
func (t *Tokens) VerifyContext(ctx context.Context, token string) (packet.User, error) {
	var c claims
	err := t.parse(ctx, token, &c)
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
		name = c.PreferredUsername
	}
	if name == "" || !packet.ValidText(name, maxNameRunes) {
		name = c.Subject
	}
	return packet.User{ID: c.Subject, Name: name}, nil
}

// parse verifies token's signature and times into c, with the key its alg
// calls for, and an identity provider's iss and aud.
func (t *Tokens) parse(ctx context.Context, token string, c *claims) error {
	tok, err := t.parser.ParseWithClaims(token, c, func(tok *jwt.Token) (any, error) { return t.keyFor(ctx, tok) })
	if err != nil {
		return err
	}
	if tok.Method.Alg() != jwt.SigningMethodHS256.Alg() {
		return t.idpCheck.Validate(c)
	}
	return nil
}

// keyFor is the key tok must be signed with: the secret for HS256, else
// the JWKS key its kid names, which must be made for its alg. The parser
// has already refused any alg but these.
func (t *Tokens) keyFor(ctx context.Context, tok *jwt.Token) (any, error) {
	alg := tok.Method.Alg()
	if alg == jwt.SigningMethodHS256.Alg() {
		return t.secret, nil
	}
	kid, _ := tok.Header["kid"].(string)
	if t.idp == nil || kid == "" {
		return nil, errors.New("no key for this token")
	}
	k, ok := t.idp.key(ctx, kid)
	if !ok || k.alg != alg {
		return nil, fmt.Errorf("no %s key %q in the JWKS", alg, kid)
	}
	return k.key, nil
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
		u, err := a.tokens.VerifyContext(c.Request().Context(), tok)
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
