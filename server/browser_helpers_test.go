package main

// Helpers for the browser tests (browser_test.go): a headless Chromium driven
// with chromedp, one isolated browser context (own cookies and localStorage)
// per simulated user, against in-process servers.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserWait bounds every single browser step: generous, because CI and the
// developers' machines are 2 cores that may be busy with benchmarks.
const browserWait = 20 * time.Second

// screenshotsEnv names the variable that makes the browser tests write the
// README screenshots into docs/ (unset in CI, so the tree stays clean).
const screenshotsEnv = "HONGBAO_SCREENSHOTS"

// chromiumPath finds the browser: $HONGBAO_CHROMIUM, else the usual names on
// PATH. It fails the test when there is none: the browser tests are part of
// the suite, so a machine without Chromium must not pass them silently.
func chromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("HONGBAO_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatalf("the browser tests need Chromium and found none on PATH: apt-get install -y chromium " +
		"(CI's .ci/run installs it), or set HONGBAO_CHROMIUM to a Chrome or Chromium binary")
	return ""
}

// browser is one headless Chromium process for a test.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("accept-lang", "zh-CN,zh"),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// Cleanups run last-in first-out: the pages close before the browser.
	t.Cleanup(func() { cancel(); acancel() })
	// The first Run starts the browser; it must have no timeout (it would
	// bind the browser's life to it), so a watchdog stands in for one.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", path, err)
		}
	case <-time.After(2 * browserWait):
		cancel()
		t.Fatalf("start %s: no answer within %v", path, 2*browserWait)
	}
	return &browser{t: t, ctx: ctx}
}

// page is one tab. Tabs opened with newPage have a browser context (and so
// storage) of their own; every tab has its own guest session either way.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context
	base string // the server this user talks to, e.g. http://127.0.0.1:1234

	mu      sync.Mutex
	console []string
	errs    []string
}

// viewport is an emulated screen.
type viewport struct {
	w, h   int64
	scale  float64
	mobile bool
}

var (
	phone   = viewport{w: 390, h: 844, scale: 2, mobile: true}
	desktop = viewport{w: 1280, h: 800, scale: 1}
	laptop  = viewport{w: 1024, h: 700, scale: 2}
)

func (b *browser) newPage(name, base string, vp viewport) *page {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	return openTab(b.t, ctx, cancel, name, base, vp)
}

// newTab opens another tab in p's browser context: same localStorage, as a
// person opening a second tab in one browser.
func (p *page) newTab(name string, vp viewport) *page {
	p.t.Helper()
	ctx, cancel := chromedp.NewContext(p.ctx)
	return openTab(p.t, ctx, cancel, name, p.base, vp)
}

func openTab(t *testing.T, ctx context.Context, cancel context.CancelFunc, name, base string, vp viewport) *page {
	t.Helper()
	t.Cleanup(cancel)
	p := &page{t: t, name: name, ctx: ctx, base: base}
	// Open the tab (no timeout on the first Run of a context, see newBrowser).
	opened := make(chan error, 1)
	go func() { opened <- chromedp.Do(ctx) }()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatalf("%s: open a tab: %v", name, err)
		}
	case <-time.After(browserWait):
		t.Fatalf("%s: open a tab: no answer within %v", name, browserWait)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			line := fmt.Sprintf("%s %s %s", m.Time.Format("15:04:05.000"), m.Type, m.Text)
			p.mu.Lock()
			p.console = append(p.console, line)
			if m.IsException() {
				p.errs = append(p.errs, line)
			}
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Logf("%s's console:\n  %s", name, strings.Join(p.console, "\n  "))
		}
	})
	vopts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(vp.scale)}
	if vp.mobile {
		vopts = append(vopts, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	p.do(chromedp.EmulateViewport(vp.w, vp.h, vopts...))
	return p
}

// fail reports a failed step with the page's state, and stops the test.
func (p *page) fail(format string, args ...any) {
	p.t.Helper()
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	if html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const q = (s) => document.querySelector(s);
		return JSON.stringify({
			conn: q('#conn-status')?.dataset.state, balance: q('#balance')?.dataset.fen,
			cards: [...document.querySelectorAll('.packet-card')].map((c) => c.dataset.packetId + ':' + c.dataset.status),
			dialogs: [...document.querySelectorAll('dialog[open]')].map((d) => d.id),
			result: q('#open-result')?.outerHTML, tally: q('#rain-tally')?.dataset.fen,
			toasts: q('#toasts')?.textContent,
		});
	})()`)); err == nil {
		msg += "\n  page state: " + html
	}
	if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		path := filepath.Join(os.TempDir(), "hongbao-browser-fail-"+p.name+".png")
		if os.WriteFile(path, png, 0o644) == nil {
			msg += "\n  screenshot: " + path
		}
	}
	p.t.Fatalf("%s: %s", p.name, msg)
}

// do runs steps, each group bounded by browserWait.
func (p *page) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.fail("%v", err)
	}
}

// eval evaluates a JavaScript expression (promises are awaited).
func eval[T any](p *page, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.fail("eval %s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it holds.
func (p *page) waitFor(what, js string) {
	p.t.Helper()
	p.waitForWithin(what, js, browserWait)
}

func (p *page) waitForWithin(what, js string, d time.Duration) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, d+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		p.fail("waiting for %s (%s): %v", what, js, err)
	}
}

// tryWait is waitFor that reports a timeout instead of failing.
func (p *page) tryWait(js string, d time.Duration) bool {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, d+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil && !errors.Is(err, chromedp.ErrPollingTimeout) {
		p.fail("poll %s: %v", js, err)
	}
	return err == nil
}

// join opens the page for room and joins as name; it returns once the
// wallet is shown and the WebSocket is open.
func (p *page) join(room, name string) {
	p.t.Helper()
	p.do(
		chromedp.Navigate(p.base+"/?room="+room),
		chromedp.WaitVisible(chromedp.CSS("#name-input")),
		chromedp.SendKeys(chromedp.CSS("#name-input"), name),
		chromedp.Click(chromedp.CSS("#join-button")),
	)
	p.waitFor("the room", `!document.querySelector('#room-screen').hidden`)
	p.waitFor("the starting balance", `document.querySelector('#balance').dataset.fen === "10000"`)
	p.waitFor("the connection", `document.querySelector('#conn-status').dataset.state === "open"`)
}

// session is the page's guest session (per tab, in sessionStorage).
func (p *page) session() (id, token string) {
	p.t.Helper()
	var s struct {
		Token string `json:"token"`
		User  struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	raw := eval[string](p, `sessionStorage.getItem('hongbao.session') ?? ''`)
	if err := json.Unmarshal([]byte(raw), &s); err != nil || s.Token == "" || s.User.ID == "" {
		p.fail("no session in sessionStorage: %q", raw)
	}
	return s.User.ID, s.Token
}

// openDialog clicks opener and waits until the dialog is open and has faded in.
func (p *page) openDialog(opener, dialog string) {
	p.t.Helper()
	p.do(chromedp.Click(chromedp.CSS(opener)))
	p.waitFor(dialog+" open", fmt.Sprintf(`(() => { const d = document.querySelector(%q);
		return d.open && d.getAnimations({ subtree: true }).every(%s); })()`, dialog, animationDone))
}

// fen reads an integer data-fen/data-amount style attribute.
func (p *page) intAttr(selector, attr string) int64 {
	p.t.Helper()
	return eval[int64](p, fmt.Sprintf(`Number(document.querySelector(%q)?.getAttribute(%q) ?? NaN)`, selector, attr))
}

// animationDone is a JavaScript predicate on an Animation: it has finished
// (or never will: infinite ones, like a pulsing dot, count as done).
const animationDone = `((a) => a.playState !== 'running' || a.effect?.getComputedTiming().iterations === Infinity)`

// settle waits for the page's finite animations (fades, the 開 flip) to end,
// so a screenshot shows the final state. Infinite ones are ignored.
func (p *page) settle() {
	p.t.Helper()
	p.tryWait(`document.getAnimations().every(`+animationDone+`)`, 5*time.Second)
}

// screenshot writes the viewport to docs/name when HONGBAO_SCREENSHOTS is set.
func (p *page) screenshot(name string) {
	p.t.Helper()
	if os.Getenv(screenshotsEnv) == "" {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, browserWait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.fail("screenshot: %v", err)
	}
	path := filepath.Join("..", "docs", name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("wrote %s (%d bytes)", path, len(png))
}

// noExceptions fails when the page threw an uncaught exception or the
// browser blocked something under the Content-Security-Policy.
func (p *page) noExceptions() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errs) > 0 {
		p.t.Errorf("%s: uncaught exceptions in the page:\n  %s", p.name, strings.Join(p.errs, "\n  "))
	}
	for _, line := range p.console {
		if strings.Contains(line, "Content Security Policy") {
			p.t.Errorf("%s: CSP violation: %s", p.name, line)
		}
	}
}
