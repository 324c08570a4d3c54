package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/rokup/rokup/cli"
	"github.com/rokup/rokup/embed"
)

func newSidecarCmd(f *cli.Flags) *cobra.Command {
	var (
		useEmbed bool
		dataDir  string
		client   string
		peer     string
		name     string
		cluster  string
	)
	cmd := &cobra.Command{
		Use:   "sidecar",
		Short: "Run the upgrade sidecar beside the Rok daemons (optionally with an embedded etcd member)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !useEmbed {
				return fmt.Errorf("the sidecar without --embed is not implemented yet (issue 7)")
			}
			if dataDir == "" {
				return cli.Usagef("--embed needs --data-dir")
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			lg, _ := zap.NewProduction()
			m, err := embed.Start(ctx, embed.Config{
				Name: name, DataDir: dataDir, ClientURL: client, PeerURL: peer,
				InitialCluster: cluster, Logger: lg,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "rokup sidecar: embedded etcd member %s serving %s (v2 and v3)\n", m.Name(), m.ClientURL())
			select {
			case <-ctx.Done():
			case err := <-m.Err():
				m.Close()
				return fmt.Errorf("embedded etcd failed: %w", err)
			}
			m.Close()
			fmt.Fprintln(os.Stderr, "rokup sidecar: stopped cleanly")
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&useEmbed, "embed", false, "run an embedded etcd member in this process")
	fl.StringVar(&dataDir, "data-dir", "", "embedded etcd data dir")
	fl.StringVar(&client, "embed-client-url", embed.DefaultClientURL, "embedded member's client URL")
	fl.StringVar(&peer, "embed-peer-url", embed.DefaultPeerURL, "embedded member's peer URL")
	fl.StringVar(&name, "embed-name", "default", "embedded member's name")
	fl.StringVar(&cluster, "embed-cluster", "", "initial cluster name=peerURL,… to be one member of a cluster")
	return cmd
}
