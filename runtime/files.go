package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/xdpc/xdpc/internal/atomicfile"
)

// writeFileAtomic replaces a state file, readable by root only, creating
// its directory.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.Write(path, data, 0o600)
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// readJSON decodes path into v; a missing file is reported with
// os.ErrNotExist.
func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// pinned is an object that can be pinned: a map, a program or a link.
type pinned interface {
	Pin(string) error
}

// pinReplace pins obj at path, replacing what was pinned there in one
// rename so the path never goes missing.
func pinReplace(obj pinned, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("pin %s: %w", path, err)
	}
	tmp := path + "~new" // bpffs refuses names with a dot
	if err := unix.Unlink(tmp); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("pin %s: %w", path, err)
	}
	if err := obj.Pin(tmp); err != nil {
		return fmt.Errorf("pin %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pin %s: %w", path, err)
	}
	return nil
}

// conventionalBPFFS is where bpffs is mounted on most systems.
const conventionalBPFFS = "/sys/fs/bpf"

// ensureBPFFS makes sure dir is a directory on a bpf filesystem. Under
// /sys/fs/bpf without a bpffs there (sysfs refuses new directories) it
// mounts one on /sys/fs/bpf, as other BPF tools do; anywhere else it
// creates dir and mounts a bpffs on it.
func ensureBPFFS(dir string) error {
	if onBPFFS(dir) {
		return nil
	}
	if strings.HasPrefix(filepath.Clean(dir)+"/", conventionalBPFFS+"/") && !onBPFFS(conventionalBPFFS) {
		if err := mountBPFFS(conventionalBPFFS); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin root %s: %w", dir, err)
	}
	if onBPFFS(dir) {
		return nil
	}
	return mountBPFFS(dir)
}

// onBPFFS reports whether path exists on a bpf filesystem.
func onBPFFS(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.BPF_FS_MAGIC
}

func mountBPFFS(dir string) error {
	if err := unix.Mount("bpffs", dir, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpffs on %s: %w", dir, err)
	}
	return nil
}
