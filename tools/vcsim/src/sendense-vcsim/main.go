// Command sendense-vcsim is the project's VMware stand-in: govmomi's vCenter
// simulator (sessions, inventory, PropertyCollector, tasks, snapshots,
// faults) plus what it lacks for backups, backed by qemu: disk contents,
// snapshot data over NBD and change tracking (QueryChangedDiskAreas,
// changeId). See tools/vcsim/README.md.
package main

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
)

func logf(format string, args ...interface{}) { log.Printf(format, args...) }

type readyLine struct {
	Event      string `json:"event"`
	URL        string `json:"url"`
	Username   string `json:"username"`
	Password   string `json:"password"`
	HarnessURL string `json:"harnessUrl,omitempty"`
	Thumbprint string `json:"thumbprint,omitempty"`
	Plain      bool   `json:"plain"`
}

func main() {
	configPath := flag.String("config", "", "JSON file describing the harness VMs")
	stateDir := flag.String("state-dir", "", "directory for disk images and sockets (its vms/ is recreated)")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	username := flag.String("username", "user", "the only accepted login user")
	password := flag.String("password", "pass", "its password")
	window := flag.Int64("cbt-window-bytes", 16<<20, "bytes of disk covered by one QueryChangedDiskAreas answer")
	plain := flag.Bool("plain", false, "serve the unmodified simulator (no harness VMs, no QueryChangedDiskAreas)")
	esx := flag.Bool("esx", false, "simulate a standalone ESXi host instead of vCenter")
	noTLS := flag.Bool("no-tls", false, "serve plain HTTP instead of HTTPS with a self-signed certificate")
	idle := flag.Duration("session-idle-timeout", 0, "expire idle sessions after this long (0: never)")
	flag.Parse()
	log.SetPrefix("sendense-vcsim: ")
	// A reader that went away (closed pipe) must not kill the harness
	// before it has stopped its qemu daemons and removed its temp dirs.
	signal.Ignore(syscall.SIGPIPE)
	if err := run(*configPath, *stateDir, *listen, *username, *password, *window, *plain, *esx, *noTLS, *idle); err != nil {
		log.Fatal(err)
	}
}

func run(configPath, stateDir, listen, username, password string, window int64, plain, esx, noTLS bool, idle time.Duration) error {
	if stateDir == "" && !plain {
		return fmt.Errorf("--state-dir is required")
	}
	if window <= 0 || window%clusterSize != 0 {
		return fmt.Errorf("--cbt-window-bytes must be a positive multiple of %d", clusterSize)
	}
	cfg, err := loadConfig(configPath)
	if err != nil {
		return err
	}
	var h *harness
	if !plain {
		abs, err := filepath.Abs(stateDir)
		if err != nil {
			return err
		}
		// Every start is a fresh inventory, so stale images must go.
		if err := os.RemoveAll(filepath.Join(abs, "vms")); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(abs, "vms"), 0o755); err != nil {
			return err
		}
		h = newHarness(abs, window)
	}

	simulator.SessionIdleTimeout = idle
	model := simulator.VPX()
	if esx {
		model = simulator.ESX()
	}
	if err := model.Create(); err != nil {
		return err
	}
	defer model.Remove()
	if !noTLS {
		model.Service.TLS = new(tls.Config)
	}
	model.Service.Listen = &url.URL{Host: listen, User: url.UserPassword(username, password)}
	srv := model.Service.NewServer()
	defer srv.Close()

	if h != nil {
		// Snapshot hooks, the QueryChangedDiskAreas endpoint and the harness
		// API sit in front of the simulator's own handlers. The handler is
		// swapped before anyone has been told the address.
		inner := srv.Config.Handler
		mux := http.NewServeMux()
		mux.Handle(simulator.Map.Path, &sdkHandler{h: h, inner: inner})
		mux.Handle("/harness/", h)
		mux.Handle("/", inner)
		srv.Config.Handler = mux
		simulator.Map.AddHandler(h)
		defer h.stop()
		if err := h.createVMs(context.Background(), srv.URL, cfg); err != nil {
			return err
		}
	}

	sdk := *srv.URL
	sdk.User = nil
	ready := readyLine{Event: "ready", URL: sdk.String(), Username: username, Password: password, Plain: plain}
	if h != nil {
		ready.HarnessURL = fmt.Sprintf("%s://%s/harness", sdk.Scheme, sdk.Host)
	}
	if !noTLS {
		sum := sha1.Sum(srv.Certificate().Raw)
		hex := make([]string, len(sum))
		for i, b := range sum {
			hex[i] = fmt.Sprintf("%02X", b)
		}
		ready.Thumbprint = strings.Join(hex, ":")
	}
	line, _ := json.Marshal(ready)
	fmt.Println(string(line))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	log.Printf("%s: shutting down", s)
	return nil
}
