package runtime

import (
	"fmt"
	"os"

	"github.com/xdpc/xdpc/artifact"
)

// ErrManifestFormat is returned for a kept manifest of a format this xdpc
// cannot read (one written by a newer xdpc).
var ErrManifestFormat = artifact.ErrManifestFormat

// loadKeptManifest reads the kept manifest at path (STATEDIR/maps/POLICY/
// manifest.json) in any format an xdpc has written and returns it in the
// current one (artifact.DecodeManifest), so the first apply of an upgraded
// xdpc keeps what it describes, and set and stats work on it before. A
// missing file is reported with os.ErrNotExist.
func loadKeptManifest(path string) (*artifact.Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	m, err := artifact.DecodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return m, nil
}
