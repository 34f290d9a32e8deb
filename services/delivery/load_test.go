package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAllowedRanges(t *testing.T) {
	allowed := mustCIDRs(defaultAllowed)
	for ip, want := range map[string]bool{
		"127.0.0.1": true, "127.1.2.3": true, "::1": true, "10.244.0.5": true, "172.16.0.1": true, "172.31.255.254": true, "192.168.1.1": true,
		"8.8.8.8": false, "172.32.0.1": false, "192.0.2.1": false, "100.64.0.1": false, "169.254.169.254": false, "2001:db8::1": false,
	} {
		if got := allowedIP(net.ParseIP(ip), allowed); got != want {
			t.Errorf("%s: allowed=%v, want %v", ip, got, want)
		}
	}
}

func TestParseLoadArgs(t *testing.T) {
	o, err := parseLoadArgs([]string{"-url", "http://127.0.0.1:9/x", "-rps", "20", "-duration", "3", "-header", "Host: delivery.local", "-header", "x-canary: always", "-allow", "100.64.0.0/10"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.rps != 20 || o.duration != 3*time.Second || o.host != "delivery.local" || o.header.Get("X-Canary") != "always" || o.header.Get("Host") != "" {
		t.Fatalf("%+v", o)
	}
	if !allowedIP(net.ParseIP("100.64.1.1"), o.allowed) {
		t.Fatal("-allow not applied")
	}
	for _, bad := range [][]string{
		{"-rps", "0"}, {"-rps", "1001"}, {"-duration", "0"}, {"-duration", "11m"}, {"-url", "ftp://127.0.0.1/"}, {"-url", "http:///x"},
		{"-header", "novalue"}, {"-allow", "not-a-cidr"}, {"extra"},
	} {
		if _, err := parseLoadArgs(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func loadOpts(t *testing.T, target string, rps int, d time.Duration) loadOptions {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	return loadOptions{target: u, rps: rps, duration: d, timeout: 2 * time.Second, header: http.Header{}, allowed: mustCIDRs(defaultAllowed), keepAlive: true}
}

// Two "releases" behind one address, one answering by header and one only in its body; every 10th request is the canary.
func TestLoadCountsStatusAndVersion(t *testing.T) {
	var n atomic.Int64
	var sawHeader atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Canary") == "yes" && r.Host == "delivery.local" {
			sawHeader.Store(true)
		}
		if n.Add(1)%10 == 0 {
			w.WriteHeader(500)
			io.WriteString(w, `{"version":"v2","status":500}`)
			return
		}
		w.Header().Set(VersionHeader, "v1")
	}))
	defer srv.Close()
	o := loadOpts(t, srv.URL+"/api/deliveries", 50, 2*time.Second)
	o.header.Set("X-Canary", "yes")
	o.host = "delivery.local"
	start := time.Now()
	r, err := runLoad(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if r.Planned != 100 || r.Sent != 100 || r.Answered != 100 || r.Failed != 0 {
		t.Fatalf("%+v", r)
	}
	if r.ByStatus["200"] != 90 || r.ByStatus["500"] != 10 || r.ByVersion["v1"] != 90 || r.ByVersion["v2"] != 10 {
		t.Fatalf("counts: %+v", r)
	}
	// Paced, not a burst: 100 requests at 50/s take about 2 s.
	if elapsed < 1900*time.Millisecond || elapsed > 4*time.Second {
		t.Fatalf("took %s", elapsed)
	}
	if !sawHeader.Load() {
		t.Fatal("headers not sent")
	}
}

// A target that never answers: the run still ends by itself (duration + timeout + grace) and counts the failures.
func TestLoadStopsByItselfAgainstAHangingTarget(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	o := loadOpts(t, srv.URL, 20, time.Second)
	o.timeout = 500 * time.Millisecond
	start := time.Now()
	r, err := runLoad(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > o.duration+o.timeout+2*time.Second {
		t.Fatalf("ran %s", time.Since(start))
	}
	if r.Answered != 0 || r.Failed != r.Sent || r.ByStatus["error"] != r.Sent || r.FirstError == "" {
		t.Fatalf("%+v", r)
	}
}

func TestLoadRefusesTargetsOffTheLocalNetworks(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	// Before the run: an address outside the ranges.
	_, err := runLoad(context.Background(), loadOpts(t, "http://192.0.2.10:80/", 10, time.Second))
	if !errors.Is(err, errRefused) {
		t.Fatalf("public address: %v", err)
	}
	// On the connection: a loopback server with loopback taken off the list (what a name resolving elsewhere meets).
	o := loadOpts(t, srv.URL, 10, 500*time.Millisecond)
	client := newLoadClient(loadOptions{timeout: time.Second, allowed: mustCIDRs([]string{"10.0.0.0/8"})})
	if _, _, err := send(context.Background(), client, o); !errors.Is(err, errRefused) {
		t.Fatalf("dial check: %v", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the refused target got %d requests", hits.Load())
	}
}

func TestLoadFollowsNoRedirect(t *testing.T) {
	var followed atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Store(true)
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	r, err := runLoad(context.Background(), loadOpts(t, srv.URL+"/start", 5, time.Second))
	if err != nil || r.ByStatus["302"] != 5 || followed.Load() {
		t.Fatalf("%+v %v followed=%v", r, err, followed.Load())
	}
}

func TestLoadMainPrintsJSON(t *testing.T) {
	srv := httptest.NewServer(newMux(settings{version: "v9", healthStatus: 200}, newMetrics()))
	defer srv.Close()
	var out, errOut bytes.Buffer
	if code := loadMain([]string{"-url", srv.URL + "/api/deliveries", "-rps", "10", "-duration", "500ms"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var r loadReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if r.Answered != 5 || r.ByVersion["v9"] != 5 || r.ByStatus["200"] != 5 || !strings.Contains(errOut.String(), "version: v9=5") {
		t.Fatalf("%+v / %s", r, errOut.String())
	}
	if code := loadMain([]string{"-url", "http://8.8.8.8/"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "outside loopback") {
		t.Fatalf("public target: exit %d %s", code, errOut.String())
	}
}
