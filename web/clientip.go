package web

import (
	"net"
	"net/netip"

	"github.com/labstack/echo/v4"
)

// ipExtractor believes X-Forwarded-For only from the trusted proxies, and
// from nobody when there are none: anyone can write that header, and the
// guest-session limit, which bounds how fast money is minted, keys on it.
func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// clientKey is what per-client limits key on: the client's address, or for
// IPv6 its /64, which one subscriber usually holds whole.
func clientKey(c echo.Context) (string, error) {
	ip := c.RealIP()
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is6() || addr.Is4In6() {
		return ip, nil
	}
	prefix, err := addr.Prefix(64)
	if err != nil {
		return ip, nil
	}
	return prefix.String(), nil
}
