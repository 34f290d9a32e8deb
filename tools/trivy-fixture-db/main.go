// trivy-fixture-db writes a small Trivy vulnerability database (schema 2) from a JSON list of advisories, with the
// trivy-db module's own writers. Trivy's real database cannot be downloaded on Slipway's build machines, so the
// tests scan real images against advisories that match packages really present in them.
//
// Usage: trivy-fixture-db -advisories advisories.json -cache-dir DIR   (writes DIR/db/trivy.db and metadata.json)
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/metadata"
	"github.com/aquasecurity/trivy-db/pkg/types"
	bolt "go.etcd.io/bbolt"
)

type advisory struct {
	ID          string   `json:"id"`
	Ecosystem   string   `json:"ecosystem"` // bucket prefix, e.g. "npm"
	Source      string   `json:"source"`    // data source id, e.g. "ghsa"
	SourceName  string   `json:"sourceName"`
	Package     string   `json:"package"`
	Vulnerable  []string `json:"vulnerable"`
	Patched     []string `json:"patched"`
	Severity    string   `json:"severity"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
}

func main() {
	in := flag.String("advisories", "", "JSON file with the advisories")
	cacheDir := flag.String("cache-dir", "", "Trivy cache directory to write db/ into")
	flag.Parse()
	if *in == "" || *cacheDir == "" {
		log.Fatal("usage: trivy-fixture-db -advisories FILE -cache-dir DIR")
	}
	raw, err := os.ReadFile(*in)
	if err != nil {
		log.Fatal(err)
	}
	var advisories []advisory
	if err := json.Unmarshal(raw, &advisories); err != nil {
		log.Fatalf("%s: %v", *in, err)
	}
	dbDir := filepath.Join(*cacheDir, "db")
	if err := os.RemoveAll(dbDir); err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		log.Fatal(err)
	}
	if err := db.Init(dbDir); err != nil {
		log.Fatal(err)
	}
	dbc := db.Config{}
	err = dbc.BatchUpdate(func(tx *bolt.Tx) error {
		for _, a := range advisories {
			bucket := a.Ecosystem + "::" + a.SourceName
			if err := dbc.PutDataSource(tx, bucket, types.DataSource{ID: types.SourceID(a.Source), Name: a.SourceName}); err != nil {
				return err
			}
			adv := types.Advisory{VulnerableVersions: a.Vulnerable, PatchedVersions: a.Patched}
			if err := dbc.PutAdvisoryDetail(tx, a.ID, a.Package, []string{bucket}, adv); err != nil {
				return err
			}
			sev, err := types.NewSeverity(a.Severity)
			if err != nil {
				return err
			}
			vuln := types.Vulnerability{
				Title:          a.Title,
				Description:    a.Description,
				Severity:       a.Severity,
				VendorSeverity: types.VendorSeverity{types.SourceID(a.Source): sev},
			}
			if err := dbc.PutVulnerability(tx, a.ID, vuln); err != nil {
				return err
			}
			if err := dbc.PutVulnerabilityID(tx, a.ID); err != nil {
				return err
			}
			// Move the advisory from the staging bucket into its ecosystem bucket, as trivy-db's build does.
			if err := dbc.SaveAdvisoryDetails(tx, a.ID); err != nil {
				return err
			}
		}
		return tx.DeleteBucket([]byte("advisory-detail"))
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := db.Close(); err != nil {
		log.Fatal(err)
	}
	now := time.Now().UTC()
	meta := metadata.Metadata{Version: db.SchemaVersion, NextUpdate: now.AddDate(10, 0, 0), UpdatedAt: now, DownloadedAt: now}
	if err := metadata.NewClient(dbDir).Update(meta); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %d advisories to %s", len(advisories), dbDir)
}
