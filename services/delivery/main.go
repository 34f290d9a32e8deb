// delivery is Slipway's sample service: a tiny HTTP server with /healthz and Prometheus /metrics.
// ERROR_RATE (0..1) and LATENCY_MS inject failures and delay, so canary analysis has something to catch;
// HEALTH_STATUS makes /healthz answer another status (503), so a smoke test has something to fail.
// `delivery check URL` is the image's own smoke test and `delivery load …` its bounded load generator (load.go).
package main

import (
	"fmt"
	"log"
	"math/rand"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

var buckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// VersionHeader names the release that answered, so a load run can count the canary's share of the traffic.
const VersionHeader = "X-Delivery-Version"

type metrics struct {
	mu       sync.Mutex
	requests map[string]int64 // "path|code" -> count
	hist     map[string][]int64
	sum      map[string]float64
	count    map[string]int64
}

func newMetrics() *metrics {
	return &metrics{requests: map[string]int64{}, hist: map[string][]int64{}, sum: map[string]float64{}, count: map[string]int64{}}
}

func (m *metrics) observe(path string, code int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[path+"|"+strconv.Itoa(code)]++
	h, ok := m.hist[path]
	if !ok {
		h = make([]int64, len(buckets))
		m.hist[path] = h
	}
	s := d.Seconds()
	for i, b := range buckets {
		if s <= b {
			h[i]++
		}
	}
	m.sum[path] += s
	m.count[path]++
}

func (m *metrics) write(w http.ResponseWriter, version string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# HELP delivery_build_info Build information.\n# TYPE delivery_build_info gauge\ndelivery_build_info{version=%q} 1\n", version)
	fmt.Fprintln(w, "# HELP http_requests_total Requests served, by path and status code.\n# TYPE http_requests_total counter")
	keys := make([]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := strings.SplitN(k, "|", 2)
		fmt.Fprintf(w, "http_requests_total{path=%q,code=%q} %d\n", p[0], p[1], m.requests[k])
	}
	fmt.Fprintln(w, "# HELP http_request_duration_seconds Request latency.\n# TYPE http_request_duration_seconds histogram")
	for path, h := range m.hist {
		for i, b := range buckets {
			fmt.Fprintf(w, "http_request_duration_seconds_bucket{path=%q,le=%q} %d\n", path, strconv.FormatFloat(b, 'g', -1, 64), h[i])
		}
		fmt.Fprintf(w, "http_request_duration_seconds_bucket{path=%q,le=\"+Inf\"} %d\n", path, m.count[path])
		fmt.Fprintf(w, "http_request_duration_seconds_sum{path=%q} %g\nhttp_request_duration_seconds_count{path=%q} %d\n", path, m.sum[path], path, m.count[path])
	}
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

// settings is what the environment (or the image's build args, which become ENV) plants in the service.
type settings struct {
	version      string
	errorRate    float64
	latency      time.Duration
	healthStatus int
}

func settingsFromEnv() (settings, error) {
	s := settings{
		version:      os.Getenv("VERSION"),
		errorRate:    envFloat("ERROR_RATE", 0),
		latency:      time.Duration(envFloat("LATENCY_MS", 0) * float64(time.Millisecond)),
		healthStatus: http.StatusOK,
	}
	if v := os.Getenv("HEALTH_STATUS"); v != "" {
		code, err := strconv.Atoi(v)
		if err != nil || code < 200 || code > 599 {
			return s, fmt.Errorf("HEALTH_STATUS=%q: must be an HTTP status code (200-599)", v)
		}
		s.healthStatus = code
	}
	if s.errorRate < 0 || s.errorRate > 1 {
		return s, fmt.Errorf("ERROR_RATE=%v: must be between 0 and 1", s.errorRate)
	}
	if s.latency < 0 {
		return s, fmt.Errorf("LATENCY_MS=%v: must not be negative", s.latency)
	}
	return s, nil
}

func newMux(s settings, m *metrics) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(VersionHeader, s.version)
		w.WriteHeader(s.healthStatus)
		if s.healthStatus == http.StatusOK {
			w.Write([]byte("ok\n"))
		} else {
			fmt.Fprintf(w, "unhealthy (HEALTH_STATUS=%d)\n", s.healthStatus)
		}
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) { m.write(w, s.version) })
	mux.HandleFunc("/api/deliveries", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		time.Sleep(s.latency)
		code := http.StatusOK
		if rand.Float64() < s.errorRate {
			code = http.StatusInternalServerError
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(VersionHeader, s.version)
		w.WriteHeader(code)
		fmt.Fprintf(w, "{\"version\":%q,\"status\":%d}\n", s.version, code)
		m.observe("/api/deliveries", code, time.Since(start))
	})
	return mux
}

// check is the image's own smoke test (`/delivery check <url>`): a FROM-scratch image has no curl, and the chart's
// Helm test hook runs the release image itself.
func check(url string) int {
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "check:", err)
		return 1
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "check:", url, "answered", res.Status)
		return 1
	}
	fmt.Println("check:", url, "ok")
	return 0
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "check" {
		os.Exit(check(os.Args[2]))
	}
	if len(os.Args) >= 2 && os.Args[1] == "load" {
		os.Exit(loadMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	s, err := settingsFromEnv()
	if err != nil {
		log.Fatal(err)
	}
	addr := os.Getenv("LISTEN")
	if addr == "" {
		addr = ":8080"
	}
	log.Printf("delivery %s listening on %s (error rate %.2f, latency %s, health status %d)", s.version, addr, s.errorRate, s.latency, s.healthStatus)
	log.Fatal(http.ListenAndServe(addr, newMux(s, newMetrics())))
}
