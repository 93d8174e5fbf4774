package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// option reads a string runtime option of Pulumi.yaml (runtime.options.KEY).
func option(info *pulumirpc.ProgramInfo, key string) string {
	if v, ok := info.GetOptions().GetFields()[key]; ok {
		return v.GetStringValue()
	}
	return ""
}

func (h *host) rootDir(info *pulumirpc.ProgramInfo, fallback string) string {
	for _, d := range []string{info.GetRootDirectory(), h.root, fallback} {
		if d != "" {
			return d
		}
	}
	wd, _ := os.Getwd()
	return wd
}

func (h *host) toolchainOf(info *pulumirpc.ProgramInfo) string {
	for _, t := range []string{option(info, "toolchain"), h.toolchain} {
		if t != "" {
			return t
		}
	}
	return "pip"
}

// venv is the program's virtualenv directory, or "" to use python3 from PATH.
func (h *host) venv(info *pulumirpc.ProgramInfo, fallbackRoot string) string {
	venv := option(info, "virtualenv")
	if venv == "" {
		venv = h.virtualenv
	}
	if venv == "" && h.toolchainOf(info) == "uv" {
		if venv = os.Getenv("UV_PROJECT_ENVIRONMENT"); venv == "" {
			venv = ".venv"
		}
	}
	if venv != "" && !filepath.IsAbs(venv) {
		venv = filepath.Join(h.rootDir(info, fallbackRoot), venv)
	}
	return venv
}

// python returns the interpreter and the environment to run it with.
func (h *host) python(info *pulumirpc.ProgramInfo, fallbackRoot string) (string, []string, error) {
	venv := h.venv(info, fallbackRoot)
	if venv == "" {
		for _, name := range []string{"python3", "python"} {
			if p, err := exec.LookPath(name); err == nil {
				return p, os.Environ(), nil
			}
		}
		return "", nil, errors.New("no python3 on PATH and no virtualenv configured")
	}
	bin := filepath.Join(venv, "bin")
	py := filepath.Join(bin, "python")
	if _, err := os.Stat(py); err != nil {
		hint := "create it first"
		if h.toolchainOf(info) == "uv" {
			hint = "run `uv sync` in the project directory"
		}
		return "", nil, fmt.Errorf("the virtualenv %s has no python (%v): %s", venv, err, hint)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHONHOME=") && !strings.HasPrefix(kv, "VIRTUAL_ENV=") &&
			!strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "VIRTUAL_ENV="+venv, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return py, env, nil
}

func pyOutput(py string, env []string, code string) ([]byte, error) {
	cmd := exec.Command(py, "-c", code)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s failed: %w", py, err)
	}
	return out, nil
}

// requiredPackages lists the resource plugins of the Pulumi packages installed for the program.
func (h *host) requiredPackages(info *pulumirpc.ProgramInfo, fallbackRoot string) ([]*pulumirpc.PackageDependency, error) {
	py, env, err := h.python(info, fallbackRoot)
	if err != nil {
		return nil, err
	}
	out, err := pyOutput(py, env,
		"import json, site; print(json.dumps(site.getsitepackages() + [site.getusersitepackages()]))")
	if err != nil {
		return nil, err
	}
	var dirs []string
	if err := json.Unmarshal(out, &dirs); err != nil {
		return nil, fmt.Errorf("site directories from %s: %w", py, err)
	}
	return pluginsIn(dirs), nil
}

// pluginsIn reads the pulumi-plugin.json of every package directly under the site directories:
// each resource plugin once per version, with the "v" the engine expects before the version.
// Files that are unreadable, malformed or not a resource plugin's are skipped.
func pluginsIn(siteDirs []string) []*pulumirpc.PackageDependency {
	seen := map[string]bool{}
	var deps []*pulumirpc.PackageDependency
	for _, dir := range siteDirs {
		matches, _ := filepath.Glob(filepath.Join(dir, "*", "pulumi-plugin.json"))
		for _, m := range matches {
			var p struct {
				Resource bool   `json:"resource"`
				Name     string `json:"name"`
				Version  string `json:"version"`
				Server   string `json:"server"`
			}
			data, err := os.ReadFile(m)
			if err != nil || json.Unmarshal(data, &p) != nil || !p.Resource || p.Name == "" {
				continue
			}
			version := p.Version
			if version != "" && !strings.HasPrefix(version, "v") {
				version = "v" + version
			}
			if seen[p.Name+"@"+version] {
				continue
			}
			seen[p.Name+"@"+version] = true
			deps = append(deps, &pulumirpc.PackageDependency{
				Kind: "resource", Name: p.Name, Version: version, Server: p.Server,
			})
		}
	}
	return deps
}
