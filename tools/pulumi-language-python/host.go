package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

const bailExitCode = 32 // the exec shim's "error already shown to the user"

// host serves the engine's LanguageRuntime requests; its fields are the command-line flags.
type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress, tracing, execScript string
	virtualenv, toolchain, root        string
}

func (h *host) GetRequiredPackages(ctx context.Context,
	req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	deps, err := h.requiredPackages(req.GetInfo(), "")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: deps}, nil
}

func (h *host) GetRequiredPlugins(ctx context.Context,
	req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	deps, err := h.requiredPackages(req.GetInfo(), req.GetPwd())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	for _, d := range deps {
		resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
			Name: d.Name, Kind: d.Kind, Version: d.Version, Server: d.Server,
		})
	}
	return resp, nil
}

// execArgs is the exec shim's command line for a Run request (after the interpreter).
func (h *host) execArgs(req *pulumirpc.RunRequest) []string {
	info := req.GetInfo()
	args := []string{"-u", h.execScript}
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress)
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", fmt.Sprintf("%v", req.GetDryRun()))
	add("parallel", fmt.Sprint(req.GetParallel()))
	add("tracing", h.tracing)
	add("organization", req.GetOrganization())
	add("root_directory", h.rootDir(info, req.GetPwd()))
	program := req.GetProgram()
	if info.GetProgramDirectory() != "" {
		program = filepath.Join(info.GetProgramDirectory(), info.GetEntryPoint())
	}
	if program == "" {
		program = "."
	}
	return append(append(args, program), req.GetArgs()...)
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	py, env, err := h.python(req.GetInfo(), req.GetPwd())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	if cfg := req.GetConfig(); cfg != nil {
		data, err := json.Marshal(cfg)
		if err != nil {
			return nil, err
		}
		env = append(env, "PULUMI_CONFIG="+string(data))
	}
	if keys := req.GetConfigSecretKeys(); keys != nil {
		data, err := json.Marshal(keys)
		if err != nil {
			return nil, err
		}
		env = append(env, "PULUMI_CONFIG_SECRET_KEYS="+string(data))
	}
	cmd := exec.CommandContext(ctx, py, h.execArgs(req)...)
	cmd.Env = append(env, "PYTHONUNBUFFERED=1")
	cmd.Dir = req.GetPwd()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return runResponse(cmd.Run()), nil
}

// runResponse tells the engine how the program ended: a bail (the shim has already shown the
// error), a failure with the exit code, or success.
func runResponse(err error) *pulumirpc.RunResponse {
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}
	case errors.As(err, &exitErr) && exitErr.ExitCode() == bailExitCode:
		return &pulumirpc.RunResponse{Bail: true}
	case errors.As(err, &exitErr):
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
		}
	default:
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
		}
	}
}

func (h *host) GetPluginInfo(ctx context.Context, _ *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

func (h *host) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	py, env, err := h.python(req.GetInfo(), "")
	if err != nil {
		return nil, err
	}
	out, err := pyOutput(py, env, "import platform; print(platform.python_version())")
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: py,
		Version:    strings.TrimSpace(string(out)),
		Metadata:   map[string]string{"toolchain": h.toolchainOf(req.GetInfo())},
	}, nil
}

func (h *host) GetProgramDependencies(ctx context.Context,
	req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	py, env, err := h.python(req.GetInfo(), req.GetPwd())
	if err != nil {
		return nil, err
	}
	out, err := pyOutput(py, env, "import json, importlib.metadata as m; "+
		"print(json.dumps(sorted({(d.metadata['Name'], d.version) for d in m.distributions()})))")
	if err != nil {
		return nil, err
	}
	var pairs [][2]string
	if err := json.Unmarshal(out, &pairs); err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, p := range pairs {
		resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: p[0], Version: p[1]})
	}
	return resp, nil
}

func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	stream grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	info := req.GetInfo()
	root := h.rootDir(info, req.GetDirectory())
	venv := h.venv(info, root)
	var cmd *exec.Cmd
	switch h.toolchainOf(info) {
	case "uv":
		cmd = exec.Command("uv", "sync")
		cmd.Env = append(os.Environ(), "UV_PROJECT_ENVIRONMENT="+venv)
	case "pip":
		if venv == "" {
			return status.Error(codes.FailedPrecondition,
				"set runtime.options.virtualenv in Pulumi.yaml to install dependencies")
		}
		py := filepath.Join(venv, "bin", "python")
		cmd = exec.Command("sh", "-c", fmt.Sprintf(
			"set -e; [ -x %q ] || python3 -m venv %q; %q -m pip install -r requirements.txt", py, venv, py))
	default:
		return status.Errorf(codes.Unimplemented, "toolchain %q is not supported by this language host",
			h.toolchainOf(info))
	}
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if sendErr := stream.Send(&pulumirpc.InstallDependenciesResponse{Stdout: out}); sendErr != nil {
		return sendErr
	}
	if err != nil {
		return fmt.Errorf("installing dependencies failed: %w", err)
	}
	return nil
}

func (h *host) RuntimeOptionsPrompts(ctx context.Context,
	req *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) Cancel(ctx context.Context, _ *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}
