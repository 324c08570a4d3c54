package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/gateway"
)

type shownMigration struct {
	App     string         `json:"app"`
	Name    string         `json:"name"`
	Applied bool           `json:"applied"`
	Source  gateway.Source `json:"source,omitempty"` // v3, or v2 for the v2-era ledger, or partial (interrupted)
}

func newShowCmd(f *cli.Flags) *cobra.Command {
	var plan bool
	cmd := &cobra.Command{
		Use:   "showmigrations [app]",
		Short: "List the migrations and whether each is applied ([X]) or not ([ ]; \"interrupted\" when a run stopped half-way)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c3, kapi, err := stores(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer c3.Close()
			ex, err := executor(c3, kapi, f, gateway.MoveOptions{})
			if err != nil {
				return err
			}
			apps := ex.Loader.Apps()
			if len(args) == 1 {
				if _, err := ex.Loader.App(args[0]); err != nil {
					if errors.Is(err, gateway.ErrUnknownApp) {
						return &cli.UsageError{Err: err}
					}
					return err
				}
				apps = args[:1]
			}
			applied, err := ex.Applied(cmd.Context())
			if err != nil {
				return err
			}
			want := map[string]bool{}
			for _, a := range apps {
				want[a] = true
			}
			var list []shownMigration
			if plan {
				for _, k := range ex.Graph.Order() {
					if want[k.App] {
						list = append(list, shown(k, applied))
					}
				}
			} else {
				for _, a := range apps {
					ms, _ := ex.Loader.App(a)
					for _, m := range ms {
						list = append(list, shown(m.Key(), applied))
					}
				}
			}
			return f.Report(cmd.OutOrStdout(), list, func(w io.Writer) {
				app := ""
				for _, m := range list {
					if plan {
						fmt.Fprintf(w, "%s  %s.%s%s\n", box(m.Applied), m.App, m.Name, note(m.Source))
						continue
					}
					if m.App != app {
						app = m.App
						fmt.Fprintln(w, app)
					}
					fmt.Fprintf(w, " %s %s%s\n", box(m.Applied), m.Name, note(m.Source))
				}
			})
		},
	}
	cmd.Flags().BoolVar(&plan, "plan", false, "list every migration in the order it applies")
	cmd.Example = `  rok-gw-manage showmigrations          # [X] applied, [ ] not
  rok-gw-manage showmigrations --plan   # in the order migrate applies them`
	cli.Uses(cmd, cli.ConnFlags, cli.Flag(cli.OutputFlag, cli.GWPrefixFlag))
	return cmd
}

func shown(k gateway.Key, applied map[gateway.Key]gateway.Source) shownMigration {
	src, ok := applied[k]
	return shownMigration{App: k.App, Name: k.Name, Applied: ok && src != gateway.Partial, Source: src}
}

// note tells an interrupted migration from one never run.
func note(src gateway.Source) string {
	if src == gateway.Partial {
		return " (interrupted: migrate finishes it, a revert past it undoes it)"
	}
	return ""
}

func box(applied bool) string {
	if applied {
		return "[X]"
	}
	return "[ ]"
}
