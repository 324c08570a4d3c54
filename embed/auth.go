package embed

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// EnableAuth turns on authentication in both stores of a cluster: it creates
// root with rootPassword and each named user with read-write access to every
// key, then enables auth. cli and v2 must be unauthenticated clients of a
// cluster whose auth is still off. v2 and v3 keep separate user databases in
// etcd 3.5, so both are set up, or a v2 request would bypass auth.
func EnableAuth(ctx context.Context, cli *clientv3.Client, v2 clientv2.Client, rootPassword string, users map[string]string) error {
	if _, err := cli.UserAdd(ctx, "root", rootPassword); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return fmt.Errorf("auth: add root: %w", err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		return fmt.Errorf("auth: grant root: %w", err)
	}
	if _, err := cli.RoleAdd(ctx, "rokup"); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
		return fmt.Errorf("auth: add role: %w", err)
	}
	// "\x00" to "\x00" is etcd's spelling of "every key".
	if _, err := cli.RoleGrantPermission(ctx, "rokup", "\x00", "\x00", clientv3.PermissionType(clientv3.PermReadWrite)); err != nil {
		return fmt.Errorf("auth: grant role: %w", err)
	}
	for name, pw := range users {
		if _, err := cli.UserAdd(ctx, name, pw); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
			return fmt.Errorf("auth: add user %s: %w", name, err)
		}
		if _, err := cli.UserGrantRole(ctx, name, "rokup"); err != nil {
			return fmt.Errorf("auth: grant user %s: %w", name, err)
		}
	}
	if v2 != nil {
		if err := enableV2Auth(ctx, v2, rootPassword, users); err != nil {
			return err
		}
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("auth: enable: %w", err)
	}
	return nil
}

func enableV2Auth(ctx context.Context, c clientv2.Client, rootPassword string, users map[string]string) error {
	ua := clientv2.NewAuthUserAPI(c)
	if err := ua.AddUser(ctx, "root", rootPassword); err != nil {
		return fmt.Errorf("auth: v2 add root: %w", err)
	}
	ra := clientv2.NewAuthRoleAPI(c)
	if err := ra.AddRole(ctx, "rokup"); err != nil {
		return fmt.Errorf("auth: v2 add role: %w", err)
	}
	if _, err := ra.GrantRoleKV(ctx, "rokup", []string{"/*"}, clientv2.ReadWritePermission); err != nil {
		return fmt.Errorf("auth: v2 grant role: %w", err)
	}
	for name, pw := range users {
		if err := ua.AddUser(ctx, name, pw); err != nil {
			return fmt.Errorf("auth: v2 add user %s: %w", name, err)
		}
		if _, err := ua.GrantUser(ctx, name, []string{"rokup"}); err != nil {
			return fmt.Errorf("auth: v2 grant user %s: %w", name, err)
		}
	}
	if err := clientv2.NewAuthAPI(c).Enable(ctx); err != nil {
		return fmt.Errorf("auth: v2 enable: %w", err)
	}
	// With v2 auth on, guests may do anything by default; revoke that.
	if _, err := ra.RevokeRoleKV(ctx, "guest", []string{"/*"}, clientv2.ReadWritePermission); err != nil {
		return fmt.Errorf("auth: v2 revoke guest: %w", err)
	}
	return nil
}
