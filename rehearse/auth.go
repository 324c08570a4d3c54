package rehearse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rokup/rokup/fencing"
	"github.com/rokup/rokup/libmap"
	"github.com/rokup/rokup/upgrade"
)

// The rights a live cluster's user needs for the real run: read-write in
// v3 on what the steps write. The rehearsal's copy has no auth, so only
// the live cluster can tell; its user and role records are read (a user
// may read its own, and its roles').

// needed is one v3 key range the run writes.
type needed struct {
	what, key, end string // end "" is the key alone
}

func (x *rehearsal) neededRights() []needed {
	prefix := func(p string) string { return clientv3.GetPrefixRangeEnd(p) }
	gw := x.r.GWPrefix + "/"
	return []needed{
		{"the Gateway documents and ledger", gw, prefix(gw)},
		{"the upgrade's run records, election and members", upgrade.DefaultPrefix + "/", prefix(upgrade.DefaultPrefix + "/")},
		{"the GC fence", fencing.DefaultFenceKey, ""},
		{"the epoch cache", libmap.DefaultPrefix, prefix(libmap.DefaultPrefix)},
		{"the current epoch", libmap.DefaultEpochKey, ""},
	}
}

// liveRights adds a problem for every range the live cluster's user may
// not read and write, when auth is on there.
func (x *rehearsal) liveRights(ctx context.Context, cli *clientv3.Client) error {
	// Only root may ask whether auth is on: a refusal says it is.
	st, err := cli.AuthStatus(ctx)
	switch {
	case errors.Is(err, rpctypes.ErrPermissionDenied):
	case err != nil:
		return fmt.Errorf("rehearse: auth status of the live cluster: %w", err)
	case !st.Enabled:
		return nil
	}
	user := cli.Username
	if user == "" {
		x.note("auth is on in the live cluster and no --user was given (a client certificate's name is the user): its rights were not checked")
		return nil
	}
	u, err := cli.UserGet(ctx, user)
	if err != nil {
		x.problem(Problem{Check: "auth", Detail: fmt.Sprintf("cannot read user %s's roles in the live cluster (%v): the run needs read-write on the Gateway prefix, /rok/upgrade/, the fence and the epoch cache", user, err)})
		return nil
	}
	if slices.Contains(u.Roles, "root") {
		return nil
	}
	var perms []*clientv3.Permission
	for _, r := range u.Roles {
		rr, err := cli.RoleGet(ctx, r)
		if err != nil {
			return fmt.Errorf("rehearse: role %s of user %s: %w", r, user, err)
		}
		for _, p := range rr.Perm {
			perms = append(perms, (*clientv3.Permission)(p))
		}
	}
	for _, n := range x.neededRights() {
		if !covered(perms, n) {
			x.problem(Problem{Check: "auth", Key: n.key, Detail: fmt.Sprintf("user %s has no read-write permission on %s (%s): the run's writes there would be refused", user, rangeString(n.key, n.end), n.what)})
		}
	}
	return nil
}

// covered reports whether one read-write permission covers n (a union of
// several is not looked for: roles grant prefixes).
func covered(perms []*clientv3.Permission, n needed) bool {
	for _, p := range perms {
		if clientv3.PermissionType(p.PermType) != clientv3.PermissionType(clientv3.PermReadWrite) {
			continue
		}
		key, end := p.Key, p.RangeEnd
		switch {
		case len(end) == 0: // one key
			if n.end == "" && string(key) == n.key {
				return true
			}
		case bytes.Equal(end, []byte{0}): // every key from key on
			if bytes.Compare(key, []byte(n.key)) <= 0 {
				return true
			}
		default:
			last := n.end
			if last == "" {
				last = n.key + "\x00"
			}
			if bytes.Compare(key, []byte(n.key)) <= 0 && bytes.Compare([]byte(last), end) <= 0 {
				return true
			}
		}
	}
	return false
}

func rangeString(key, end string) string {
	if end == "" {
		return key
	}
	return key + "…"
}
