package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gyreml/gyre/pkg/blob"
	"github.com/gyreml/gyre/pkg/config"
	"github.com/gyreml/gyre/pkg/telemetry"
	"github.com/gyreml/gyre/pkg/worker"
)

func newWorkerCmd() *cobra.Command {
	var (
		cfg    worker.Config
		labels []string
	)
	cmd := &cobra.Command{
		Use:   "worker --scheduler HOST:PORT",
		Short: "Pull training jobs from the scheduler and run them (GPU or CPU)",
		Long: "A worker needs the scheduler's gRPC address and the artifact store (S3): GYRE_S3_ENDPOINT,\n" +
			"GYRE_S3_ACCESS_KEY, GYRE_S3_SECRET_KEY, GYRE_S3_BUCKET (or the flags). GPUs are found with nvidia-smi.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := config.Default()
			if err := c.LoadEnv(os.LookupEnv); err != nil {
				return err
			}
			s3 := &cfg.S3
			s3.Endpoint, s3.AccessKey, s3.SecretKey, s3.Bucket, s3.Region, s3.Secure = c.S3.Endpoint, c.S3.AccessKey, c.S3.SecretKey, c.S3.Bucket, c.S3.Region, c.S3.Secure
			applyS3Flags(cmd, s3)
			if s3.Endpoint == "" {
				return fmt.Errorf("the artifact store is required: --s3-endpoint or GYRE_S3_ENDPOINT")
			}
			cfg.Labels = map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return fmt.Errorf("--label %q: want key=value", l)
				}
				cfg.Labels[k] = v
			}
			cfg.Logger = telemetry.NewLogger(os.Stderr, c.Log.Level, c.Log.Format)
			cfg.Version = version
			w, err := worker.New(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			return w.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Scheduler, "scheduler", "127.0.0.1:9090", "the scheduler's gRPC address")
	f.StringVar(&cfg.Name, "name", "", "worker name (default: the host name)")
	f.StringVar(&cfg.WorkDir, "work-dir", "", "where jobs keep their files while they run (default: the OS temp dir)")
	f.Float64Var(&cfg.CPU, "cpu", 0, "CPUs to offer (default: all)")
	f.Int64Var(&cfg.MemoryMiB, "memory-mib", 0, "memory to offer in MiB (default: all)")
	f.StringSliceVar(&labels, "label", nil, "key=value labels (repeatable)")
	f.String("s3-endpoint", "", "artifact store endpoint host:port (GYRE_S3_ENDPOINT)")
	f.String("s3-access-key", "", "GYRE_S3_ACCESS_KEY")
	f.String("s3-secret-key", "", "GYRE_S3_SECRET_KEY")
	f.String("s3-bucket", "", "GYRE_S3_BUCKET (default gyre)")
	return cmd
}

func applyS3Flags(cmd *cobra.Command, s3 *blob.Config) {
	for flag, dst := range map[string]*string{"s3-endpoint": &s3.Endpoint, "s3-access-key": &s3.AccessKey, "s3-secret-key": &s3.SecretKey, "s3-bucket": &s3.Bucket} {
		if v, _ := cmd.Flags().GetString(flag); v != "" {
			*dst = v
		}
	}
}
