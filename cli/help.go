package cli

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Groups of the shared flags, for Uses.
var (
	// ConnFlags reach etcd.
	ConnFlags = []string{"endpoints", "cacert", "cert", "key", "user", "password", "dial-timeout"}
	// StorageFlags name this node and its storage.
	StorageFlags = []string{"node", "nodelocal-root", "local-root"}
)

// Shared flags that are not in a group.
const (
	OutputFlag   = "output"
	GWPrefixFlag = "gw-prefix"
)

const usesKey = "rokup/uses"

// Uses declares which of the shared flags cmd uses: its help shows only
// those (the storage flags among its own), and giving another is bad
// usage. A command that declares nothing takes every shared flag.
func Uses(cmd *cobra.Command, flags ...[]string) {
	var all []string
	for _, g := range flags {
		all = append(all, g...)
	}
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[usesKey] = strings.Join(all, ",")
}

// Flag is one flag name, for Uses.
func Flag(names ...string) []string { return names }

// uses reports whether cmd uses the shared flag name (true when cmd
// declares nothing).
func uses(cmd *cobra.Command, name string) bool {
	list, ok := cmd.Annotations[usesKey]
	if !ok {
		return true
	}
	return slices.Contains(strings.Split(list, ","), name)
}

func shared(name string) bool {
	return slices.Contains(ConnFlags, name) || slices.Contains(StorageFlags, name) || name == OutputFlag || name == GWPrefixFlag
}

// sharedSet holds the shared flags as cmd sees them: inherited, or its
// own on a root command.
func sharedSet(cmd *cobra.Command) *pflag.FlagSet {
	if cmd.HasParent() {
		return cmd.InheritedFlags()
	}
	return cmd.LocalFlags()
}

// checkUses refuses a shared flag the command does not use: it would be
// silently ignored (rokup demo --endpoints runs its own etcd anyway).
func checkUses(cmd *cobra.Command) error {
	var bad []string
	sharedSet(cmd).VisitAll(func(fl *pflag.Flag) {
		if fl.Changed && shared(fl.Name) && !uses(cmd, fl.Name) {
			bad = append(bad, "--"+fl.Name)
		}
	})
	if len(bad) > 0 {
		return Usagef("%s does not take %s (see %s --help)", cmd.CommandPath(), strings.Join(bad, ", "), cmd.CommandPath())
	}
	return nil
}

// commandFlags are the flags of the command itself: its own, those of its
// group (fence --fence-key), and the storage and prefix flags it uses.
func commandFlags(cmd *cobra.Command) string {
	fs := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
	fs.SortFlags = false
	add := func(fl *pflag.Flag) {
		if !shared(fl.Name) || ((slices.Contains(StorageFlags, fl.Name) || fl.Name == GWPrefixFlag) && uses(cmd, fl.Name)) {
			if fs.Lookup(fl.Name) == nil {
				fs.AddFlag(fl)
			}
		}
	}
	cmd.LocalFlags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	return strings.TrimRight(fs.FlagUsages(), " \n")
}

// connFlags are the shared connection and output flags the command uses.
func connFlags(cmd *cobra.Command) string {
	fs := pflag.NewFlagSet(cmd.Name(), pflag.ContinueOnError)
	sharedSet(cmd).VisitAll(func(fl *pflag.Flag) {
		if (slices.Contains(ConnFlags, fl.Name) || fl.Name == OutputFlag) && uses(cmd, fl.Name) {
			fs.AddFlag(fl)
		}
	})
	return strings.TrimRight(fs.FlagUsages(), " \n")
}

func init() {
	cobra.AddTemplateFunc("commandFlags", commandFlags)
	cobra.AddTemplateFunc("connFlags", connFlags)
}

// usageTemplate is cobra's, with the flags in two groups: the command's
// own (storage roots included), then those that reach etcd and shape the
// output, each listing only what the command uses.
const usageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Available Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{with commandFlags .}}

Flags:
{{.}}{{end}}{{with connFlags .}}

Connection and output flags:
{{.}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
`

// prepareHelp sets the usage template and the flag check on a tree.
func prepareHelp(root *cobra.Command) {
	root.SetUsageTemplate(usageTemplate)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.RunE != nil {
			orig := c.RunE
			c.RunE = func(cmd *cobra.Command, args []string) error {
				if err := checkUses(cmd); err != nil {
					return err
				}
				return orig(cmd, args)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
