package gateway

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Key names one migration: its app and its name.
type Key struct {
	App  string `json:"app"`
	Name string `json:"name"`
}

func (k Key) String() string { return k.App + "." + k.Name }

// Result is what a migration did, kept in its ledger entry.
type Result struct {
	Counts   map[string]int64 `json:"counts,omitempty"`
	Checksum string           `json:"checksum,omitempty"`
	// Report is the migration's detailed report (a MoveReport, a
	// BucketsReport); it is printed, not recorded.
	Report any `json:"-"`
}

// Func is a forward, backward or dry-run step of a migration. It must be
// idempotent: after an interruption it runs again from the start.
type Func func(ctx context.Context, env *Env) (Result, error)

// Migration is one named change of the Gateway store.
type Migration struct {
	App  string
	Name string
	Deps []Key
	// Forward applies the migration; Backward reverts it (nil: it cannot
	// be reverted); DryRun counts what Forward would do without writing
	// (nil: nothing to count).
	Forward  Func
	Backward Func
	DryRun   Func
	// Pending, if set, reports whether a run of Forward or Backward was
	// interrupted and left the store between the two (env.Applied holds
	// the ledger): the migration is then Partial, neither applied nor
	// unapplied, and a plan may run it either way.
	Pending func(ctx context.Context, env *Env) (bool, error)
}

// Key is the migration's key.
func (m *Migration) Key() Key { return Key{m.App, m.Name} }

// Loader holds the migrations of every app, by name (Django's migration
// loader): what the graph orders and the executor runs.
type Loader struct {
	byKey map[Key]*Migration
	apps  map[string][]*Migration
}

// NewLoader returns an empty loader; GW returns the one rokup ships.
func NewLoader() *Loader {
	return &Loader{byKey: map[Key]*Migration{}, apps: map[string][]*Migration{}}
}

// Register adds a migration. Names are unique within an app.
func (r *Loader) Register(m Migration) error {
	if m.App == "" || m.Name == "" || strings.ContainsAny(m.App+m.Name, "/.") {
		return fmt.Errorf("gateway: register %q.%q: app and name must be non-empty, without '/' or '.'", m.App, m.Name)
	}
	if m.Forward == nil {
		return fmt.Errorf("gateway: register %s: no forward function", m.Key())
	}
	if _, dup := r.byKey[m.Key()]; dup {
		return fmt.Errorf("gateway: register %s: already registered", m.Key())
	}
	mm := m
	r.byKey[m.Key()] = &mm
	r.apps[m.App] = append(r.apps[m.App], &mm)
	sort.Slice(r.apps[m.App], func(i, j int) bool { return r.apps[m.App][i].Name < r.apps[m.App][j].Name })
	return nil
}

// MustRegister is Register for package-level tables; it panics on error.
func (r *Loader) MustRegister(m Migration) {
	if err := r.Register(m); err != nil {
		panic(err)
	}
}

// Migrations lists every migration of every app, by app then name.
func (r *Loader) Migrations() []*Migration {
	var all []*Migration
	for _, a := range r.Apps() {
		all = append(all, r.apps[a]...)
	}
	return all
}

// Apps lists the apps, sorted.
func (r *Loader) Apps() []string {
	apps := make([]string, 0, len(r.apps))
	for a := range r.apps {
		apps = append(apps, a)
	}
	sort.Strings(apps)
	return apps
}

// App lists an app's migrations by name.
func (r *Loader) App(app string) ([]*Migration, error) {
	ms, ok := r.apps[app]
	if !ok {
		return nil, fmt.Errorf("%w %q (apps: %s)", ErrUnknownApp, app, strings.Join(r.Apps(), ", "))
	}
	return ms, nil
}

// Get returns one migration.
func (r *Loader) Get(k Key) (*Migration, error) {
	ms, err := r.App(k.App)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.Name == k.Name {
			return m, nil
		}
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return nil, fmt.Errorf("%w %q in app %s (valid: %s)", ErrUnknownMigration, k.Name, k.App, strings.Join(names, ", "))
}
