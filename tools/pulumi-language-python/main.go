// pulumi-language-python: a small Python language host for the Pulumi engine. It speaks the
// LanguageRuntime gRPC protocol of github.com/pulumi/pulumi/sdk/v3 and runs the program through
// the SDK's pulumi-language-python-exec shim installed beside it. It covers what preview, up,
// destroy and about need: required packages (from the virtualenv's pulumi-plugin.json files),
// Run, About, program dependencies and installs with uv or pip; no code generation.
//
// It exists because the upstream host's module
// (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is not served by the Go
// module proxy at any version; scripts/toolchain.sh builds this one instead.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// Version is set at build time to the Python SDK version this host pairs with.
var Version = "0.0.0-dev"

func main() {
	h := &host{}
	flag.StringVar(&h.tracing, "tracing", "", "Zipkin-compatible tracing endpoint")
	flag.StringVar(&h.virtualenv, "virtualenv", "", "virtualenv, relative to the project root")
	flag.StringVar(&h.toolchain, "toolchain", "", "pip or uv")
	flag.StringVar(&h.root, "root", "", "project root directory")
	flag.String("typechecker", "", "ignored")
	flag.Bool("binary", false, "ignored")
	useExecutor := flag.String("use-executor", "", "path of pulumi-language-python-exec")
	flag.Parse()
	if args := flag.Args(); len(args) > 0 {
		h.engineAddress = args[len(args)-1]
	}
	h.execScript = *useExecutor
	if h.execScript == "" {
		self, err := os.Executable()
		if err != nil {
			fatal(err)
		}
		if resolved, err := filepath.EvalSymlinks(self); err == nil {
			self = resolved
		}
		h.execScript = self + "-exec"
	}
	if _, err := os.Stat(h.execScript); err != nil {
		fatal(fmt.Errorf("the exec shim is missing: %w", err))
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
	})
	if err != nil {
		fatal(fmt.Errorf("could not start the language host RPC server: %w", err))
	}
	// The engine reads the port from the first line of standard output.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fatal(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
	os.Exit(1)
}
