package devicecmd

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/vbauerster/mpb/v8/decor"
	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"

	"github.com/zdps/zdps/internal/bench"
)

// benchConfig is the configuration of `zdps bench`.
type benchConfig struct {
	Endpoint      []string
	MQTTEndpoint  string
	Transport     string
	IDScope       string
	Devices       int
	Concurrency   int
	Rate          float64
	Attestation   string
	CSR           bool
	Pregenerate   bool
	KeepAlive     bool
	TLSResumption bool
	KeyExchange   string
	CPUProfile    string
	Setup         bool
	Cleanup       bool
	Prefix        string
	ServerPID     []int
	DatabasePID   []int
	Timeout       time.Duration
	Progress      bool
}

// NewBenchCmd is `zdps bench`.
func NewBenchCmd(g *cmdutil.Globals) *cobra.Command {
	var cfg benchConfig
	cmd := &cobra.Command{
		Use:   "bench [flags]",
		Short: "Fleet simulator: provision N simulated devices and report throughput and latency",
		Long: `Provision --devices simulated devices against a running zdps through the real
device API (HTTPS, the DPS wire format), --concurrency at a time, and report
registrations per second, latency percentiles (p50, p90, p99, max) and errors by
kind.

--transport mqtt registers over MQTT 3.1.1 on TLS (--mqtt-endpoint, by default the
endpoint's host on port 8883), --transport mqtt-ws over MQTT on a WebSocket at
/$iothub/websocket of the HTTPS endpoint: each device opens its own connection,
CONNECTs, SUBSCRIBEs, PUBLISHes its registration, reads the answer and DISCONNECTs.
All simulated devices come from one address: start serve with
--mqtt-max-connections-per-ip above --concurrency (the default, 100, turns the
excess away, and those devices retry after a backoff that the latency shows).

Each device opens its own TLS connection with a full handshake, as real devices do
(--keep-alive shares connections; --tls-resumption allows session resumption).
The devices offer the X25519 key exchange of device TLS stacks (--tls-key-exchange
x25519mlkem768 offers Go's post-quantum hybrid instead). The simulator verifies the
server's certificate chain once and then accepts exactly that chain, so that chain
verification, which devices do on their own processors, does not load this one.
With --csr (the default) every device sends a P-256 CSR and gets an operational
certificate; the keys and CSRs are made before the clock starts so that the
simulator's CPU does not count against the server (--pregenerate=false makes them
inside the timed phase, as devices would).

--setup creates what the devices need through the service API first, in bulk:
one symmetric-key enrollment per device (symmetric-individual), one symmetric-key
group (symmetric-group), or a test CA and a group whose signing certificate it is,
with a device certificate per device (x509); and two hubs when the instance has
none. --cleanup deletes them and the run's registration records afterwards.
Without --setup, --prefix must name enrollments (PREFIX-0000000, ...) or a group
(PREFIX) that exist.

--server-pid PID adds the server's CPU time per registration to the report (the
server must run on this machine). The exit status is 1 when any device failed.`,
		Example: `  zdps bench --devices 20000 --concurrency 256 --setup --cleanup
  zdps bench --attestation x509 --devices 5000 --setup --cleanup -o json
  zdps bench --transport mqtt --devices 3000 --concurrency 256 --setup --cleanup
  zdps bench --attestation symmetric-group --rate 500 --devices 10000 --setup --cleanup`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBench(cmd, g, cfg) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&cfg.Endpoint, "endpoint", nil, "host[:port] of the device API (default: the connection string's HostName); repeat it for replicas of one instance: the devices are spread over them and the report has figures per endpoint")
	f.StringVar(&cfg.Transport, "transport", "https", "https, mqtt (MQTT 3.1.1 over TLS) or mqtt-ws (MQTT over a WebSocket on the HTTPS endpoint)")
	f.StringVar(&cfg.MQTTEndpoint, "mqtt-endpoint", "", "with --transport mqtt: host:port of the MQTT listener (default: the endpoint's host, port 8883)")
	f.StringVar(&cfg.IDScope, "id-scope", "", "ID scope (default: read from the service with the connection string)")
	f.IntVar(&cfg.Devices, "devices", 1000, "how many devices register")
	f.IntVar(&cfg.Concurrency, "concurrency", 64, "how many devices register at once")
	f.Float64Var(&cfg.Rate, "rate", 0, "start at most this many registrations per second (default: as fast as --concurrency allows)")
	f.StringVar(&cfg.Attestation, "attestation", bench.SymmetricIndividual, "symmetric-individual, symmetric-group, x509 or tpm (software TPMs: the Azure two-round TPM flow)")
	f.BoolVar(&cfg.CSR, "csr", true, "send a P-256 CSR and get an operational certificate")
	f.BoolVar(&cfg.Pregenerate, "pregenerate", true, "make keys and CSRs before the timed phase (false: each device makes its own inside it)")
	f.BoolVar(&cfg.KeepAlive, "keep-alive", false, "share keep-alive connections between devices (symmetric key only; X.509 devices always connect on their own)")
	f.BoolVar(&cfg.TLSResumption, "tls-resumption", false, "allow TLS session resumption (default: session tickets off, every handshake full)")
	f.StringVar(&cfg.KeyExchange, "tls-key-exchange", bench.KeyExchangeX25519, "TLS key exchange the devices offer: x25519 (device TLS stacks: mbedTLS, wolfSSL, OpenSSL before 3.5), p256, or x25519mlkem768 (Go's and OpenSSL 3.5's post-quantum hybrid)")
	f.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the simulator to this file")
	f.BoolVar(&cfg.Setup, "setup", false, "create the enrollments or group (and hubs if there are none) first, in bulk")
	f.BoolVar(&cfg.Cleanup, "cleanup", false, "with --setup: delete what setup made and the run's registration records afterwards")
	f.StringVar(&cfg.Prefix, "prefix", "", "registration IDs are PREFIX-0000000...; the group is PREFIX (default: bench- and 6 random hex digits)")
	f.IntSliceVar(&cfg.ServerPID, "server-pid", nil, "process ID of zdps serve on this machine, to report its CPU time per registration (repeat it or separate with commas for replicas: their CPU time adds up)")
	f.IntSliceVar(&cfg.DatabasePID, "database-pid", nil, "process IDs of the database's processes serving the servers (PostgreSQL backends of their connections, on this machine), to report the database's CPU time per registration")
	f.DurationVar(&cfg.Timeout, "timeout", bench.DefaultTimeout, "bound on one device's registration, retries included")
	cmdutil.ProgressFlag(f, &cfg.Progress)
	return cmd
}

func runBench(cmd *cobra.Command, g *cmdutil.Globals, cfg benchConfig) error {
	if err := g.CheckOutput(); err != nil {
		return err
	}
	if cfg.Cleanup && !cfg.Setup {
		return cmdutil.Errorf(nil, "--cleanup deletes what --setup made: use them together")
	}
	c, err := g.Client()
	if err != nil {
		return err
	}
	roots, err := g.RootCAs()
	if err != nil {
		return err
	}
	first := ""
	if len(cfg.Endpoint) > 0 {
		first = cfg.Endpoint[0]
	}
	endpoint, scope, err := g.DeviceService(cmd.Context(), first, cfg.IDScope)
	if err != nil {
		return err
	}
	var more []string
	if len(cfg.Endpoint) > 1 {
		more = cfg.Endpoint[1:]
	}
	var pid int
	var morePIDs []int
	if len(cfg.ServerPID) > 0 {
		pid, morePIDs = cfg.ServerPID[0], cfg.ServerPID[1:]
	}
	bc := bench.Config{
		Endpoint: endpoint, Transport: cfg.Transport, MQTTEndpoint: cfg.MQTTEndpoint, IDScope: scope, RootCAs: roots, Client: c,
		Attestation: cfg.Attestation, Devices: cfg.Devices, Concurrency: cfg.Concurrency, Rate: cfg.Rate,
		CSR: cfg.CSR, GenerateInline: !cfg.Pregenerate, KeepAlive: cfg.KeepAlive, TLSResumption: cfg.TLSResumption, KeyExchange: cfg.KeyExchange,
		Setup: cfg.Setup, Cleanup: cfg.Cleanup, Prefix: cfg.Prefix, ServerPID: pid, ServerPIDs: morePIDs, Timeout: cfg.Timeout,
		Endpoints: more, DatabasePIDs: cfg.DatabasePID,
	}
	cs, csErr := g.Connection()
	bc.StoreCounters = storeCounters(cs, csErr == nil, roots, append([]string{endpoint}, more...))
	var bar *benchBar
	if g.DrawProgress(cmd, cfg.Progress) {
		bar = newBenchBar(cmd, cfg.Devices)
		bc.Progress = bar.done
		bc.Phase = bar.phase
	}
	if g.Opts.Getenv("GOGC") == "" {
		// The simulator shares the machine with the server it measures:
		// it trades a little memory for less collector CPU, as serve does.
		debug.SetGCPercent(400)
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return cmdutil.Errorf(err, "--cpuprofile: %v", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return cmdutil.Errorf(err, "--cpuprofile: %v", err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, runErr := bench.Run(cmd.Context(), bc)
	if bar != nil {
		bar.Finish(runErr == nil)
	}
	if rep != nil && (rep.Succeeded > 0 || rep.Failed > 0) {
		p := g.Printer(cmd.OutOrStdout())
		if p.JSON {
			if err := p.PrintJSON(rep); err != nil {
				return err
			}
		} else if _, err := fmt.Fprint(p.W, rep.String()); err != nil {
			return err
		}
	}
	switch {
	case errors.Is(runErr, bench.ErrInvalidConfig):
		return cmdutil.Errorf(runErr, "%v", runErr)
	case runErr != nil:
		return cmdutil.Errorf(runErr, "%s", cmdutil.UnwrapTransport(runErr))
	case rep.Failed > 0:
		return cmdutil.Errorf(nil, "%d of %d registrations failed", rep.Failed, rep.Devices)
	}
	return nil
}

// benchBar draws devices done, registrations/s and failures on stderr.
type benchBar struct {
	*cmdutil.Bar
	failed atomic.Int64
	start  atomic.Int64 // unix nanoseconds of the timed phase's start
	name   atomic.Value
}

func newBenchBar(cmd *cobra.Command, total int) *benchBar {
	b := &benchBar{}
	b.name.Store("setup")
	status := decor.Any(func(s decor.Statistics) string {
		t0 := b.start.Load()
		if t0 == 0 {
			return b.name.Load().(string) + "..."
		}
		secs := time.Since(time.Unix(0, t0)).Seconds()
		rate := 0.0
		if secs > 0 {
			rate = float64(s.Current) / secs
		}
		return fmt.Sprintf("%d/%d  %.0f/s  %d failed", s.Current, s.Total, rate, b.failed.Load())
	})
	b.Bar = cmdutil.NewBar(cmd, "bench ", int64(total), nil, []decor.Decorator{status})
	return b
}

func (b *benchBar) phase(name string) {
	b.name.Store(name)
	if name == "register" {
		b.start.Store(time.Now().UnixNano())
	}
}

func (b *benchBar) done(ok bool) {
	if !ok {
		b.failed.Add(1)
	}
	b.Increment()
}
