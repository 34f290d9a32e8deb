package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestHealthzAnswersThePlantedStatus(t *testing.T) {
	healthy := get(t, newMux(settings{version: "v1", healthStatus: 200}, newMetrics()), "/healthz")
	if healthy.Code != 200 || healthy.Body.String() != "ok\n" {
		t.Fatalf("healthy: %d %q", healthy.Code, healthy.Body.String())
	}
	sick := get(t, newMux(settings{version: "v1", healthStatus: 503}, newMetrics()), "/healthz")
	if sick.Code != 503 || !strings.Contains(sick.Body.String(), "unhealthy") {
		t.Fatalf("HEALTH_STATUS=503: %d %q", sick.Code, sick.Body.String())
	}
}

func TestSettingsFromEnv(t *testing.T) {
	t.Setenv("VERSION", "v2")
	t.Setenv("ERROR_RATE", "0.05")
	t.Setenv("LATENCY_MS", "50")
	t.Setenv("HEALTH_STATUS", "503")
	s, err := settingsFromEnv()
	if err != nil || s.version != "v2" || s.errorRate != 0.05 || s.latency != 50*time.Millisecond || s.healthStatus != 503 {
		t.Fatalf("%+v %v", s, err)
	}
	// Empty values (the Dockerfile's build args left unset) mean no regression.
	for _, k := range []string{"ERROR_RATE", "LATENCY_MS", "HEALTH_STATUS"} {
		t.Setenv(k, "")
	}
	s, err = settingsFromEnv()
	if err != nil || s.errorRate != 0 || s.latency != 0 || s.healthStatus != 200 {
		t.Fatalf("unset: %+v %v", s, err)
	}
	for k, v := range map[string]string{"HEALTH_STATUS": "sick", "ERROR_RATE": "1.5", "LATENCY_MS": "-1"} {
		t.Run(k, func(t *testing.T) {
			t.Setenv(k, v)
			if _, err := settingsFromEnv(); err == nil {
				t.Fatalf("%s=%s accepted", k, v)
			}
		})
	}
}

func TestDeliveriesCarryVersionAndPlantedErrors(t *testing.T) {
	m := newMetrics()
	bad := newMux(settings{version: "v2", errorRate: 1, latency: 20 * time.Millisecond, healthStatus: 200}, m)
	start := time.Now()
	rec := get(t, bad, "/api/deliveries")
	if rec.Code != 500 || rec.Header().Get(VersionHeader) != "v2" || !strings.Contains(rec.Body.String(), `"version":"v2"`) {
		t.Fatalf("%d %v %q", rec.Code, rec.Header(), rec.Body.String())
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("LATENCY_MS not applied")
	}
	metrics := get(t, bad, "/metrics").Body.String()
	if !strings.Contains(metrics, `http_requests_total{path="/api/deliveries",code="500"} 1`) {
		t.Fatalf("metrics:\n%s", metrics)
	}
	good := get(t, newMux(settings{version: "v1", healthStatus: 200}, newMetrics()), "/api/deliveries")
	if good.Code != 200 {
		t.Fatalf("error rate 0 answered %d", good.Code)
	}
}
