package upgrade

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rokup/rokup/composer"
	"github.com/rokup/rokup/libmap"
)

// Readiness is what a sidecar found when it checked its own storage at
// start, published with its member key: the steps it can run here, and
// why it cannot run the others. The master's preflight reads it.
type Readiness struct {
	Roots []RootCheck `json:"roots"`
	// Serves lists the storage steps this sidecar can run.
	Serves []string `json:"serves"`
	// Skips lists the steps the operator said it will not run (--skip-steps).
	Skips []string `json:"skips,omitempty"`
}

// RootCheck is the verdict on one storage root.
type RootCheck struct {
	Kind    string   `json:"kind"` // "nodelocal" or "local"
	Path    string   `json:"path"`
	OK      bool     `json:"ok"`
	Problem string   `json:"problem,omitempty"`
	Scopes  []string `json:"scopes,omitempty"` // scope folders found
}

// Root kinds.
const (
	RootNodelocal = "nodelocal"
	RootLocal     = "local"
)

// StorageSteps are the steps that read storage, each with the roots it needs.
var StorageSteps = map[string][]string{
	StepNodelocal:    {RootNodelocal},
	StepPrecollect:   {RootNodelocal},
	StepCA:           {RootLocal},
	StepPrecollectCA: {RootLocal},
	StepAll:          {RootNodelocal, RootLocal},
}

// ErrUnknownStep is returned for a --skip-steps name that is no step.
var ErrUnknownStep = errors.New("upgrade: unknown step")

// CheckSkips checks that every name is a step of the plan.
func CheckSkips(skips []string) error {
	all := []string{StepPrecollect, StepPrecollectCA, StepFence, StepMigrate, StepNodelocal, StepCA, StepAll, StepCleanup, StepUnfence}
	for _, s := range skips {
		if !slices.Contains(all, s) {
			return fmt.Errorf("%w %q (steps: %s)", ErrUnknownStep, s, strings.Join(all, ", "))
		}
	}
	return nil
}

// CheckStorage checks the two roots of node (either may be empty: not
// given) and derives the storage steps it can run, less those skipped. A
// nodelocal root marked as another node's is unusable here.
func CheckStorage(node, nodelocalRoot, localRoot string, skips []string) Readiness {
	r := Readiness{Skips: skips, Serves: []string{}}
	nl := checkRoot(RootNodelocal, nodelocalRoot, libmap.NodelocalScopes())
	if nl.OK {
		if err := composer.CheckOwner(nodelocalRoot, node); err != nil {
			nl.OK, nl.Problem = false, err.Error()
		}
	}
	r.Roots = []RootCheck{nl, checkRoot(RootLocal, localRoot, libmap.CAScopes())}
	for _, step := range sortedSteps() {
		if slices.Contains(skips, step) {
			continue
		}
		if ok, _ := r.canRun(step); ok {
			r.Serves = append(r.Serves, step)
		}
	}
	return r
}

// Root returns the check of one kind of root.
func (r Readiness) Root(kind string) RootCheck {
	for _, c := range r.Roots {
		if c.Kind == kind {
			return c
		}
	}
	return RootCheck{Kind: kind, Problem: "not checked"}
}

// Cannot says why this sidecar cannot run step, or "" when it can.
func (r Readiness) Cannot(step string) string {
	if slices.Contains(r.Skips, step) {
		return fmt.Sprintf("it was started with --skip-steps %s", step)
	}
	if _, needs := StorageSteps[step]; !needs {
		return ""
	}
	if slices.Contains(r.Serves, step) {
		return ""
	}
	_, why := r.canRun(step)
	return why
}

// Unserved lists the storage steps this sidecar cannot run and did not
// skip, with the reason of each.
func (r Readiness) Unserved() map[string]string {
	out := map[string]string{}
	for _, step := range sortedSteps() {
		if slices.Contains(r.Skips, step) || slices.Contains(r.Serves, step) {
			continue
		}
		_, out[step] = r.canRun(step)
	}
	return out
}

func (r Readiness) canRun(step string) (bool, string) {
	var why []string
	for _, kind := range StorageSteps[step] {
		if c := r.Root(kind); !c.OK {
			why = append(why, c.Problem)
		}
	}
	return len(why) == 0, strings.Join(why, "; ")
}

func sortedSteps() []string {
	return []string{StepPrecollect, StepPrecollectCA, StepNodelocal, StepCA, StepAll}
}

// checkRoot: the root exists, is a readable directory, and holds at least
// one of its scope folders, each readable. A root with none of them is
// most likely the wrong directory (a missing scope folder alone only means
// that scope is empty on this node).
func checkRoot(kind, root string, scopes []libmap.Scope) RootCheck {
	c := RootCheck{Kind: kind, Path: root}
	flag := "--" + kind + "-root"
	if root == "" {
		c.Problem = fmt.Sprintf("no %s root given (%s)", kind, flag)
		return c
	}
	if err := composer.CheckRoot(root); err != nil {
		c.Problem = fmt.Sprintf("%s root: %v", kind, err)
		return c
	}
	if _, err := os.ReadDir(root); err != nil {
		c.Problem = fmt.Sprintf("%s root %s is not readable: %v", kind, root, err)
		return c
	}
	var names []string
	for _, sc := range scopes {
		names = append(names, string(sc)+"/")
		dir := filepath.Join(root, string(sc))
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() {
			continue
		}
		if _, err := os.ReadDir(dir); err != nil {
			c.Problem = fmt.Sprintf("%s root: %s is not readable: %v", kind, dir, err)
			return c
		}
		c.Scopes = append(c.Scopes, string(sc))
	}
	if len(c.Scopes) == 0 {
		c.Problem = fmt.Sprintf("%s root %s holds none of %s: is it the %s root?", kind, root, strings.Join(names, ", "), kind)
		return c
	}
	c.OK = true
	return c
}
