package artifact

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
)

// encodeManifest returns the manifest as stored in ManifestSection: compact
// JSON, fields in declaration order, so equal manifests give equal bytes.
func encodeManifest(m *Manifest) ([]byte, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return data, nil
}

// ReadManifest returns the manifest stored in an artifact's ManifestSection.
func ReadManifest(r io.ReaderAt) (*Manifest, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("read elf: %w", err)
	}
	defer f.Close()
	sec := f.Section(ManifestSection)
	if sec == nil {
		return nil, fmt.Errorf("read manifest: no section %s", ManifestSection)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("read section %s: %w", ManifestSection, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("decode manifest: format %d, this build reads format %d", m.Format, ManifestFormat)
	}
	return &m, nil
}
