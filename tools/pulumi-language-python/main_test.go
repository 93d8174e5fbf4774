package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
)

// The tests stand a shell script in for the virtualenv's python: the host only ever runs it as
// a command, so what it prints and the exit code it returns are all that matter.

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// fakeVenv makes ROOT/.venv with a bin/python running script, and returns the venv directory.
func fakeVenv(t *testing.T, root, script string) string {
	t.Helper()
	venv := filepath.Join(root, ".venv")
	writeFile(t, filepath.Join(venv, "bin", "python"), "#!/bin/sh\n"+script, 0o755)
	return venv
}

func uvProgram(root string) *pulumirpc.ProgramInfo {
	options, _ := structpb.NewStruct(map[string]any{"toolchain": "uv"})
	return &pulumirpc.ProgramInfo{RootDirectory: root, ProgramDirectory: root, EntryPoint: ".", Options: options}
}

func TestRequiredPluginsComeFromTheVirtualenvsPluginFiles(t *testing.T) {
	t.Setenv("UV_PROJECT_ENVIRONMENT", "")
	root := t.TempDir()
	site, userSite := filepath.Join(root, "site"), filepath.Join(root, "user-site")
	fakeVenv(t, root, "echo '[\""+site+"\", \""+userSite+"\"]'\n")
	writeFile(t, filepath.Join(site, "pulumi_kubernetes", "pulumi-plugin.json"),
		`{"resource": true, "name": "kubernetes", "version": "4.34.2"}`, 0o644)
	writeFile(t, filepath.Join(site, "pulumi", "pulumi-plugin.json"), `{"resource": false, "name": "pulumi"}`, 0o644)
	writeFile(t, filepath.Join(site, "broken", "pulumi-plugin.json"), `{"resource": tru`, 0o644)
	writeFile(t, filepath.Join(userSite, "pulumi_random", "pulumi-plugin.json"),
		`{"resource": true, "name": "random", "version": "v4.18.0", "server": "https://plugins.example"}`, 0o644)
	// The same plugin installed twice (site and user site) is required once.
	writeFile(t, filepath.Join(userSite, "pulumi_kubernetes", "pulumi-plugin.json"),
		`{"resource": true, "name": "kubernetes", "version": "4.34.2"}`, 0o644)

	resp, err := (&host{}).GetRequiredPlugins(context.Background(),
		&pulumirpc.GetRequiredPluginsRequest{Info: uvProgram(root)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range resp.GetPlugins() {
		got = append(got, p.GetKind()+" "+p.GetName()+" "+p.GetVersion()+" "+p.GetServer())
	}
	slices.Sort(got)
	want := []string{"resource kubernetes v4.34.2 ", "resource random v4.18.0 https://plugins.example"}
	if !slices.Equal(got, want) {
		t.Errorf("plugins = %q, want %q", got, want)
	}
}

func TestRunHandsTheEngineRequestToTheExecShim(t *testing.T) {
	t.Setenv("UV_PROJECT_ENVIRONMENT", "")
	root := t.TempDir()
	record := filepath.Join(root, "record")
	venv := fakeVenv(t, root, `for a in "$@"; do echo "arg $a"; done >"`+record+`"
echo "env PULUMI_CONFIG=$PULUMI_CONFIG" >>"`+record+`"
echo "env VIRTUAL_ENV=$VIRTUAL_ENV" >>"`+record+`"
echo "env PATH=$PATH" >>"`+record+`"
`)
	h := &host{engineAddress: "127.0.0.1:4000", execScript: "/sdk/pulumi-language-python-exec"}
	resp, err := h.Run(context.Background(), &pulumirpc.RunRequest{
		Info: uvProgram(root), Pwd: root, Project: "mlops-platform", Stack: "ci",
		MonitorAddress: "127.0.0.1:5000", DryRun: true, Parallel: 4,
		Config: map[string]string{"mlops-platform:profile": "small"},
	})
	if err != nil || resp.GetError() != "" || resp.GetBail() {
		t.Fatalf("Run = %v, %v", resp, err)
	}
	data, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	args := strings.Join(slices.DeleteFunc(slices.Clone(lines), func(l string) bool {
		return !strings.HasPrefix(l, "arg ")
	}), " ")
	wantArgs := "arg -u arg /sdk/pulumi-language-python-exec arg --monitor arg 127.0.0.1:5000 " +
		"arg --engine arg 127.0.0.1:4000 arg --project arg mlops-platform arg --stack arg ci " +
		"arg --pwd arg " + root + " arg --dry_run arg true arg --parallel arg 4 " +
		"arg --root_directory arg " + root + " arg " + root
	if args != wantArgs {
		t.Errorf("exec shim arguments:\n got %s\nwant %s", args, wantArgs)
	}
	for _, want := range []string{
		`env PULUMI_CONFIG={"mlops-platform:profile":"small"}`,
		"env VIRTUAL_ENV=" + venv,
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("the program's environment lacks %s: %q", want, lines)
		}
	}
	if !slices.ContainsFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, "env PATH="+filepath.Join(venv, "bin")+":")
	}) {
		t.Errorf("the virtualenv's bin is not first on PATH: %q", lines)
	}
}

func TestRunTellsTheEngineHowTheProgramEnded(t *testing.T) {
	t.Setenv("UV_PROJECT_ENVIRONMENT", "")
	for _, tc := range []struct {
		name, script string
		bail         bool
		errorText    string
	}{
		{"success", "exit 0", false, ""},
		{"error already shown", "exit 32", true, ""},
		{"failure", "exit 3", false, "Program exited with non-zero exit code: 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			fakeVenv(t, root, tc.script+"\n")
			resp, err := (&host{execScript: "exec"}).Run(context.Background(),
				&pulumirpc.RunRequest{Info: uvProgram(root), Pwd: root})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetBail() != tc.bail || resp.GetError() != tc.errorText {
				t.Errorf("Run = bail %v, error %q; want bail %v, error %q",
					resp.GetBail(), resp.GetError(), tc.bail, tc.errorText)
			}
		})
	}
}

func TestRunWithoutAVirtualenvSaysHowToCreateIt(t *testing.T) {
	t.Setenv("UV_PROJECT_ENVIRONMENT", "")
	root := t.TempDir()
	resp, err := (&host{}).Run(context.Background(), &pulumirpc.RunRequest{Info: uvProgram(root), Pwd: root})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.GetError(), filepath.Join(root, ".venv")) ||
		!strings.Contains(resp.GetError(), "uv sync") {
		t.Errorf("error %q names neither the virtualenv nor `uv sync`", resp.GetError())
	}
}

func TestVirtualenvComesFromPulumiYamlThenFlagThenUvDefault(t *testing.T) {
	root := "/project"
	withOptions := func(options map[string]any) *pulumirpc.ProgramInfo {
		s, err := structpb.NewStruct(options)
		if err != nil {
			t.Fatal(err)
		}
		return &pulumirpc.ProgramInfo{RootDirectory: root, Options: s}
	}
	for _, tc := range []struct {
		name  string
		h     host
		info  *pulumirpc.ProgramInfo
		uvEnv string
		want  string
	}{
		{"Pulumi.yaml option, relative to the root", host{virtualenv: "flag-venv"},
			withOptions(map[string]any{"virtualenv": "venv"}), "", "/project/venv"},
		{"flag when Pulumi.yaml has none", host{virtualenv: "/abs/venv"},
			withOptions(map[string]any{}), "", "/abs/venv"},
		{"uv's .venv by default", host{},
			withOptions(map[string]any{"toolchain": "uv"}), "", "/project/.venv"},
		{"uv's UV_PROJECT_ENVIRONMENT", host{},
			withOptions(map[string]any{"toolchain": "uv"}), "/elsewhere/env", "/elsewhere/env"},
		{"pip without a virtualenv: python3 from PATH", host{},
			withOptions(map[string]any{}), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("UV_PROJECT_ENVIRONMENT", tc.uvEnv)
			if got := tc.h.venv(tc.info, ""); got != tc.want {
				t.Errorf("venv = %q, want %q", got, tc.want)
			}
		})
	}
}

// pluginStream collects what RunPlugin sends back to the engine.
type pluginStream struct {
	grpc.ServerStream
	stdout, stderr strings.Builder
	exitCode       int32
}

func (s *pluginStream) Context() context.Context { return context.Background() }

func (s *pluginStream) Send(r *pulumirpc.RunPluginResponse) error {
	s.stdout.Write(r.GetStdout())
	s.stderr.Write(r.GetStderr())
	s.exitCode = r.GetExitcode()
	return nil
}

func TestRunPluginRunsThePackDirectoryInItsVirtualenvAndStreamsItsOutput(t *testing.T) {
	root := t.TempDir()
	pack := filepath.Join(root, "policy")
	writeFile(t, filepath.Join(pack, "__main__.py"), "", 0o644)
	fakeVenv(t, root, `echo "args: $*"; echo "env: $PACK_ENV $VIRTUAL_ENV"; echo warn >&2; exit 0`+"\n")
	options, _ := structpb.NewStruct(map[string]any{"virtualenv": "../.venv"})
	info := &pulumirpc.ProgramInfo{RootDirectory: pack, ProgramDirectory: pack, EntryPoint: ".", Options: options}
	stream := &pluginStream{}
	err := (&host{}).RunPlugin(&pulumirpc.RunPluginRequest{
		Info: info, Pwd: root, Args: []string{"127.0.0.1:1234"}, Env: []string{"PACK_ENV=set"},
	}, stream)
	if err != nil {
		t.Fatal(err)
	}
	want := "args: -u " + pack + " 127.0.0.1:1234\nenv: set " + filepath.Join(pack, "../.venv") + "\n"
	if stream.stdout.String() != want || stream.stderr.String() != "warn\n" {
		t.Fatalf("stdout %q (want %q), stderr %q", stream.stdout.String(), want, stream.stderr.String())
	}
}

func TestRunPluginReportsThePluginsExitCode(t *testing.T) {
	root := t.TempDir()
	fakeVenv(t, root, "exit 3\n")
	options, _ := structpb.NewStruct(map[string]any{"virtualenv": ".venv"})
	info := &pulumirpc.ProgramInfo{RootDirectory: root, ProgramDirectory: root, Options: options}
	stream := &pluginStream{}
	if err := (&host{}).RunPlugin(&pulumirpc.RunPluginRequest{Info: info, Pwd: root}, stream); err != nil {
		t.Fatal(err)
	}
	if stream.exitCode != 3 {
		t.Fatalf("exit code %d, want 3", stream.exitCode)
	}
}
