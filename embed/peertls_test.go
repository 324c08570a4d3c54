package embed_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/rokup/rokup/embed"
)

// Peers with certificates of the cluster's CA form the cluster over TLS;
// a member whose certificate another CA signed is refused by its peers and
// never joins; the peer port does not speak plain HTTP.
func TestPeerTLSFormsTheClusterAndRefusesAStranger(t *testing.T) {
	dir := t.TempDir()
	pki, err := embed.NewPKI(filepath.Join(dir, "pki"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := embed.NewPKI(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	ports, err := embed.FreePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	var peers []string
	cfgs := make([]embed.Config, 3)
	for i := range cfgs {
		name := fmt.Sprintf("m%d", i+1)
		cert, key := pki.ServerCert, pki.ServerKey
		if i == 2 {
			cert, key = other.ServerCert, other.ServerKey // the stranger
		}
		cfgs[i] = embed.Config{Name: name, DataDir: filepath.Join(dir, name), NoFsync: true,
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("https://127.0.0.1:%d", ports[2*i+1]),
			PeerTLS:   &embed.TLS{CertFile: cert, KeyFile: key, TrustedCAFile: pki.CAFile, ClientCertAuth: true},
		}
		peers = append(peers, name+"="+cfgs[i].PeerURL)
	}
	for i := range cfgs {
		cfgs[i].InitialCluster = strings.Join(peers, ",")
	}
	cfgs[2].ReadyTimeout = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	members := make([]*embed.Member, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Add(1)
		go func(i int) { defer wg.Done(); members[i], errs[i] = embed.Start(ctx, cfgs[i]) }(i)
	}
	wg.Wait()
	for _, m := range members {
		if m != nil {
			t.Cleanup(m.Close)
		}
	}
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("the members with the cluster's certificates: %v, %v", errs[0], errs[1])
	}
	if !errors.Is(errs[2], embed.ErrNotReady) {
		t.Fatalf("the member with another CA's certificate: %v; want it refused (never ready)", errs[2])
	}
	cli := embed.NewTestClient(t, append(members[0].Endpoints(), members[1].Endpoints()...))
	if _, err := cli.Put(ctx, "/k", "v"); err != nil {
		t.Fatalf("a write through the two TLS peers: %v", err)
	}
	resp, err := http.Get(strings.Replace(cfgs[0].PeerURL, "https://", "http://", 1) + "/version")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the peer port: %s, want it refused", resp.Status)
		}
	}
	// The peer port wants a certificate of the cluster's CA from whoever
	// calls it, as a member calling another does.
	peerGet := func(certFile, keyFile string) error {
		info := transport.TLSInfo{CertFile: certFile, KeyFile: keyFile, TrustedCAFile: pki.CAFile}
		cfg, err := info.ClientConfig()
		if err != nil {
			return err
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		resp, err := c.Get(cfgs[0].PeerURL + "/version")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s", resp.Status)
		}
		return nil
	}
	if err := peerGet(pki.ClientCert, pki.ClientKey); err != nil {
		t.Fatalf("the peer port with the cluster's certificate: %v", err)
	}
	if err := peerGet("", ""); err == nil {
		t.Fatal("the peer port answered a caller without a certificate")
	}
	if err := peerGet(other.ClientCert, other.ClientKey); err == nil {
		t.Fatal("the peer port answered a caller with another CA's certificate")
	}
}

func TestPeerTLSNeedsHTTPSAndACertificate(t *testing.T) {
	ctx := context.Background()
	if _, err := embed.Start(ctx, embed.Config{DataDir: t.TempDir(), PeerURL: "https://127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "needs peer TLS") {
		t.Fatalf("https peer URL without peer TLS: %v", err)
	}
	if _, err := embed.Start(ctx, embed.Config{DataDir: t.TempDir(), PeerURL: "http://127.0.0.1:1", PeerTLS: &embed.TLS{CertFile: "c", KeyFile: "k"}}); err == nil || !strings.Contains(err.Error(), "https peer URL") {
		t.Fatalf("peer TLS on an http peer URL: %v", err)
	}
}
