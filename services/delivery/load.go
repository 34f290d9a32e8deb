// `delivery load`: a bounded load generator for tests and the demo. It sends -rps requests a second for -duration,
// then stops by itself, and prints (stdout, one JSON object) how many answers came back with each status code and
// from each version, so a caller can compute the canary's share. It refuses targets outside loopback and the private
// ranges pods and Services use, checked both before the run and on every connection (a name that later resolves
// elsewhere, a redirect or a proxy cannot take it off the machine's own networks).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	maxRPS      = 1000
	maxDuration = 10 * time.Minute
	maxInFlight = 256
	// Only this much of an answer is read to find its version: the load generator is not a downloader.
	maxBody = 64 << 10
)

// defaultAllowed: loopback, and the RFC 1918 ranges the local clusters' pod and Service addresses come from.
var defaultAllowed = []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}

type loadOptions struct {
	target    *url.URL
	rps       int
	duration  time.Duration
	timeout   time.Duration
	header    http.Header
	host      string
	allowed   []*net.IPNet
	keepAlive bool
}

type loadReport struct {
	Target         string         `json:"target"`
	RPS            int            `json:"rps"`
	DurationS      float64        `json:"durationSeconds"`
	Planned        int            `json:"planned"`
	Sent           int            `json:"sent"`
	Answered       int            `json:"answered"`
	Failed         int            `json:"failed"`
	ByStatus       map[string]int `json:"byStatus"`
	ByVersion      map[string]int `json:"byVersion"`
	FirstError     string         `json:"firstError,omitempty"`
	ElapsedSeconds float64        `json:"elapsedSeconds"`
}

type headerFlag struct{ h http.Header }

func (f *headerFlag) String() string { return "" }
func (f *headerFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("%q: want name:value", v)
	}
	f.h.Add(strings.TrimSpace(k), strings.TrimSpace(val))
	return nil
}

type cidrFlag struct{ nets *[]*net.IPNet }

func (f *cidrFlag) String() string { return "" }
func (f *cidrFlag) Set(v string) error {
	_, n, err := net.ParseCIDR(v)
	if err != nil {
		return err
	}
	*f.nets = append(*f.nets, n)
	return nil
}

func mustCIDRs(cidrs []string) []*net.IPNet {
	out := make([]*net.IPNet, 0, len(cidrs))
	for _, c := range cidrs {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			panic(err)
		}
		out = append(out, n)
	}
	return out
}

// parseSeconds accepts a Go duration ("30s", "2m") or a plain number of seconds ("30").
func parseSeconds(v string) (time.Duration, error) {
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(s * float64(time.Second)), nil
	}
	return time.ParseDuration(v)
}

func parseLoadArgs(args []string, stderr io.Writer) (loadOptions, error) {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rawURL := fs.String("url", "http://127.0.0.1:8080/api/deliveries", "target URL (http or https)")
	rps := fs.Int("rps", 10, fmt.Sprintf("requests per second (1-%d)", maxRPS))
	rawDuration := fs.String("duration", "10s", fmt.Sprintf("how long to send, e.g. 30s or 30 (at most %s)", maxDuration))
	timeout := fs.Duration("timeout", 5*time.Second, "timeout of each request")
	keepAlive := fs.Bool("keepalive", true, "reuse connections (false: a new connection per request, so a kube-proxy Service balances per request)")
	headers := headerFlag{http.Header{}}
	fs.Var(&headers, "header", "request header name:value (repeatable; Host:name sets the virtual host)")
	var extra []*net.IPNet
	fs.Var(&cidrFlag{&extra}, "allow", "also allow targets in this CIDR (repeatable); loopback and RFC 1918 are always allowed")
	if err := fs.Parse(args); err != nil {
		return loadOptions{}, err
	}
	if fs.NArg() > 0 {
		return loadOptions{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o := loadOptions{rps: *rps, timeout: *timeout, header: headers.h, keepAlive: *keepAlive, allowed: append(mustCIDRs(defaultAllowed), extra...)}
	u, err := url.Parse(*rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return o, fmt.Errorf("-url %q: want an http(s) URL with a host", *rawURL)
	}
	o.target = u
	if o.rps < 1 || o.rps > maxRPS {
		return o, fmt.Errorf("-rps %d: must be 1-%d", o.rps, maxRPS)
	}
	if o.duration, err = parseSeconds(*rawDuration); err != nil || o.duration <= 0 || o.duration > maxDuration {
		return o, fmt.Errorf("-duration %q: must be above 0 and at most %s", *rawDuration, maxDuration)
	}
	if o.timeout <= 0 || o.timeout > time.Minute {
		return o, fmt.Errorf("-timeout %s: must be above 0 and at most 1m", o.timeout)
	}
	if h := o.header.Get("Host"); h != "" {
		o.host = h
		o.header.Del("Host")
	}
	return o, nil
}

func allowedIP(ip net.IP, allowed []*net.IPNet) bool {
	for _, n := range allowed {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

var errRefused = errors.New("refused")

// checkTarget resolves the target's host before the run: every address it resolves to must be allowed.
func checkTarget(ctx context.Context, u *url.URL, allowed []*net.IPNet) error {
	host := u.Hostname()
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return fmt.Errorf("resolve %s: %w", host, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if !allowedIP(ip, allowed) {
			return fmt.Errorf("%w: %s (%s) is outside loopback and the private ranges; pass -allow CIDR to allow it", errRefused, host, ip)
		}
	}
	return nil
}

// client dials only allowed addresses (checked on the socket's actual peer), follows no redirect and uses no proxy.
func newLoadClient(o loadOptions) *http.Client {
	dialer := &net.Dialer{
		Timeout: o.timeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !allowedIP(ip, o.allowed) {
				return fmt.Errorf("%w: connection to %s", errRefused, address)
			}
			return nil
		},
	}
	transport := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: maxInFlight,
		DisableKeepAlives:   !o.keepAlive,
	}
	return &http.Client{
		Transport:     transport,
		Timeout:       o.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// versionOf: the version header, else the "version" field of a JSON body, else "unknown".
func versionOf(res *http.Response, body []byte) string {
	if v := res.Header.Get(VersionHeader); v != "" {
		return v
	}
	var b struct {
		Version string `json:"version"`
	}
	if json.Unmarshal(body, &b) == nil && b.Version != "" {
		return b.Version
	}
	return "unknown"
}

type tally struct {
	mu sync.Mutex
	r  *loadReport
}

func (t *tally) add(status, version string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.r.Failed++
		t.r.ByStatus["error"]++
		if t.r.FirstError == "" {
			t.r.FirstError = err.Error()
		}
		return
	}
	t.r.Answered++
	t.r.ByStatus[status]++
	t.r.ByVersion[version]++
}

// runLoad sends rps×duration requests on a fixed schedule and returns when they are answered or timed out. It never
// runs longer than duration + timeout (+ a second's grace): a slow target gets fewer requests, not a longer run.
func runLoad(ctx context.Context, o loadOptions) (*loadReport, error) {
	planned := int(math.Round(float64(o.rps) * o.duration.Seconds()))
	if planned < 1 {
		planned = 1
	}
	r := &loadReport{Target: o.target.String(), RPS: o.rps, DurationS: o.duration.Seconds(), Planned: planned, ByStatus: map[string]int{}, ByVersion: map[string]int{}}
	if err := checkTarget(ctx, o.target, o.allowed); err != nil {
		return r, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.duration+o.timeout+time.Second)
	defer cancel()
	client := newLoadClient(o)
	defer client.CloseIdleConnections()
	t := &tally{r: r}
	interval := time.Duration(float64(time.Second) / float64(o.rps))
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	sendUntil := start.Add(o.duration)
schedule:
	for i := 0; i < planned; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				break schedule
			}
		}
		if time.Now().After(sendUntil.Add(interval)) {
			break // behind schedule (target slower than maxInFlight allows): stop on time rather than late
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break schedule
		}
		r.Sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			status, version, err := send(ctx, client, o)
			t.add(status, version, err)
		}()
	}
	wg.Wait()
	r.ElapsedSeconds = math.Round(time.Since(start).Seconds()*1000) / 1000
	return r, nil
}

func send(ctx context.Context, client *http.Client, o loadOptions) (string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.target.String(), nil)
	if err != nil {
		return "", "", err
	}
	for k, vs := range o.header {
		req.Header[k] = vs
	}
	if o.host != "" {
		req.Host = o.host
	}
	res, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, maxBody)) // let the connection be reused
	return strconv.Itoa(res.StatusCode), versionOf(res, body), nil
}

func summary(r *loadReport) string {
	parts := func(m map[string]int) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([]string, 0, len(keys))
		for _, k := range keys {
			out = append(out, fmt.Sprintf("%s=%d", k, m[k]))
		}
		return strings.Join(out, " ")
	}
	return fmt.Sprintf("load: %d/%d sent to %s in %.1fs; status: %s; version: %s", r.Sent, r.Planned, r.Target, r.ElapsedSeconds, parts(r.ByStatus), parts(r.ByVersion))
}

// loadMain: exit 0 after a run (whatever the answers were; the caller judges them), 2 for bad or refused arguments.
func loadMain(args []string, stdout, stderr io.Writer) int {
	o, err := parseLoadArgs(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "load:", err)
		}
		return 2
	}
	// Interrupted (the demo stops it when the release ends), it stops sending and still prints what it counted.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := runLoad(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	fmt.Fprintln(stderr, summary(r))
	if err := json.NewEncoder(stdout).Encode(r); err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 1
	}
	return 0
}
