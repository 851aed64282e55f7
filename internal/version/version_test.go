package version

import (
	"runtime/debug"
	"testing"
)

func TestFillFromBuildInfo(t *testing.T) {
	t.Parallel()
	vcs := func(settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}
		for i := 0; i < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	tests := []struct {
		name string
		set  Info // what the linker set
		bi   *debug.BuildInfo
		want Info
	}{
		{"ldflags win", Info{Version: "v1.2.3", Commit: "abc"}, vcs("vcs.revision", "def"), Info{Version: "v1.2.3", Commit: "abc"}},
		{"vcs revision", Info{}, vcs("vcs.revision", "def", "vcs.modified", "false"), Info{Commit: "def"}},
		{"modified tree", Info{}, vcs("vcs.revision", "def", "vcs.modified", "true"), Info{Commit: "def-dirty"}},
		{"module version", Info{}, &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}, Info{Version: "v0.4.0"}},
		{"nothing known", Info{}, vcs(), Info{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.set
			fillFromBuildInfo(&got, tt.bi)
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestGetNeverLeavesAFieldEmpty(t *testing.T) {
	t.Parallel()
	for name, v := range map[string]string{"version": Get().Version, "commit": Get().Commit, "build date": Get().BuildDate} {
		if v == "" {
			t.Errorf("%s is empty", name)
		}
	}
}
