package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/conn"
	"github.com/rokup/rokup/embed"
	"github.com/rokup/rokup/internal/backoff"
)

// ServeMember runs a bench's embedded etcd member (fsync on) until ctx
// ends or the member fails: the child side of Config.MemberCommand.
func ServeMember(ctx context.Context, dataDir, clientURL, peerURL string) error {
	m, err := embed.Start(ctx, memberConfig(dataDir, clientURL, peerURL))
	if err != nil {
		return err
	}
	defer m.Close()
	select {
	case <-ctx.Done():
		return nil
	case err := <-m.Err():
		return err
	}
}

func memberConfig(dataDir, clientURL, peerURL string) embed.Config {
	return embed.Config{Name: "bench", DataDir: dataDir, ClientURL: clientURL, PeerURL: peerURL, QuotaBytes: embeddedQuota, Pprof: true,
		SnapshotCount: snapshotCount}
}

// member is the embedded member, in this process or in a child.
type member struct {
	inProc *embed.Member
	child  *exec.Cmd
	exited chan error
	urls   []string
	// data is its data dir, whose snap/ tells its last snapshot's index;
	// snapCount its SnapshotCount (see clearSnapshot).
	data      string
	snapCount uint64
}

// startMember starts the member in dir: in a child process running
// command (plus --data-dir, --client-url, --peer-url) when command is set,
// so that the memory a path reports is the tool's and not etcd's, and in
// this process otherwise.
func startMember(ctx context.Context, dir string, command []string) (*member, error) {
	ports, err := embed.FreePorts(2)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "etcd")
	curl := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	purl := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if len(command) == 0 {
		m, err := embed.Start(ctx, memberConfig(data, curl, purl))
		if err != nil {
			return nil, err
		}
		return &member{inProc: m, urls: m.Endpoints(), data: data, snapCount: snapshotCount}, nil
	}
	args := append(append([]string{}, command[1:]...), "--data-dir", data, "--client-url", curl, "--peer-url", purl)
	cmd := exec.Command(command[0], args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start the etcd member process: %w", err)
	}
	m := &member{child: cmd, exited: make(chan error, 1), urls: []string{curl}, data: data, snapCount: snapshotCount}
	go func() { m.exited <- cmd.Wait() }()
	// Ready when it answers; conn.V3 checks reachability.
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := conn.V3(ctx, conn.Config{Endpoints: m.urls, DialTimeout: time.Second})
		if err == nil {
			c.Close()
			return m, nil
		}
		select {
		case err := <-m.exited:
			m.child = nil
			return nil, fmt.Errorf("bench: the etcd member process exited while starting: %v", err)
		case <-ctx.Done():
			m.close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.close()
			return nil, fmt.Errorf("bench: the etcd member process did not serve %s within 60s: %w", curl, err)
		}
	}
}

// close stops the member: a child gets SIGTERM, then SIGKILL after 10s.
func (m *member) close() {
	if m.inProc != nil {
		m.inProc.Close()
		return
	}
	if m.child == nil {
		return
	}
	m.child.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		m.child.Process.Kill()
		<-m.exited
	}
	m.child = nil
}

// settle collects the member's garbage before a path is timed, so that
// every path of every run starts at the same point of etcd's collection
// cycle (just after one) instead of wherever the paths before it left it.
// At 1M objects etcd's v2 store is a live heap of 1.1–1.5 GiB that each
// cycle marks; a forced collection of it takes 0.2 s, and a path's own
// allocations still start new cycles (in the Gateway move, collection was
// 35–55 % of etcd's CPU samples with or without this). A member in this
// process is collected with the bench's own heap (watchMemory); a child is
// asked to, through the heap profile's gc=1, which answers once the
// collection is done. A cluster of the user's is left alone.
func (m *member) settle(ctx context.Context) error {
	if m.child == nil {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.urls[0]+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("bench: collect the etcd member's garbage: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bench: collect the etcd member's garbage: %s", resp.Status)
	}
	return nil
}

// emptyReadBuffer has the member commit once without a put of a key, so
// that every path starts with etcd's read buffer empty. etcd 3.5 keeps the
// puts not yet committed to bbolt in a buffer that every read copies whole
// (backend.ConcurrentReadTx: bucketBuffer.Copy copies its capacity, not
// what it holds), and a bucket's buffer keeps the capacity of the largest
// commit it held until a commit in which that bucket had no put. Without
// this, one large request before a path (a 100 000-key scratch deletion
// is 100 000 tombstones) slowed every read after it: measured on the lab
// store (2026-12-02, 2 cores), the naive sweep's get + txn pairs ran at
// 1 300–1 430/s, then 550–670/s after 40 000 tombstones in one request,
// then 1 310–1 400/s again after one lease grant and revoke. That is what
// split the naive sweep's rate between runs (1 640–2 050 or 3 680–4 240
// objects/s): whether some request before it had left the buffer large.
// The waits outlast the default batch interval (100 ms), so that the puts
// before are committed first and the grant's commit is one of its own.
func emptyReadBuffer(ctx context.Context, cli *clientv3.Client) error {
	const commit = 250 * time.Millisecond
	if backoff.Sleep(ctx, commit); ctx.Err() != nil {
		return ctx.Err()
	}
	l, err := cli.Grant(ctx, 60)
	if err != nil {
		return fmt.Errorf("bench: empty etcd's read buffer: %w", err)
	}
	if _, err := cli.Revoke(ctx, l.ID); err != nil {
		return fmt.Errorf("bench: empty etcd's read buffer: %w", err)
	}
	backoff.Sleep(ctx, commit)
	return ctx.Err()
}

// ErrMemberExited is returned when the child etcd member dies mid-run.
var ErrMemberExited = errors.New("bench: the etcd member process exited")

// err reports a child that exited during the run.
func (m *member) err() error {
	if m.child == nil {
		return nil
	}
	select {
	case err := <-m.exited:
		m.child = nil
		return fmt.Errorf("%w: %v", ErrMemberExited, err)
	default:
		return nil
	}
}
