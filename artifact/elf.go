package artifact

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// The ELF writer lays an artifact out the way clang lays out a libbpf-style
// object, so that libbpf (and so iproute2), cilium/ebpf and llvm-objdump all
// read it:
//
//	xdp             the XDP program (SHT_PROGBITS, AX), jumps resolved
//	.relxdp         R_BPF_64_64 for every ld_imm64 that loads a map
//	tc, .reltc      the TC egress program, when there is one, likewise
//	license         the license string, NUL-terminated
//	.maps           one zero-filled BTF map definition per map
//	.xdpc.manifest  the manifest as JSON
//	.BTF            the programs' functions, the map definitions' types, a
//	                VAR per map, DATASEC .maps
//	.BTF.ext        func_info of each program, line_info of source comments
//	.symtab         the programs (STT_FUNC) and the maps (STT_OBJECT)
//	.strtab         symbol names
//	.shstrtab       section names
//
// The output depends on nothing but the artifact: writing it twice gives the
// same bytes.

// elfSectionMaps is the section holding BTF-style map definitions.
const elfSectionMaps = ".maps"

// Sizes of the ELF64 file header and of one section header.
const (
	elfHeaderSize        = 64
	elfSectionHeaderSize = 64
)

// rBPF64_64 is R_BPF_64_64, the relocation of an ld_imm64 map load.
const rBPF64_64 = 1

// defaultLicense is written when the artifact names none.
const defaultLicense = "GPL"

// WriteELF writes a as an ELF64 little-endian EM_BPF ET_REL object.
func (a *Artifact) WriteELF(w io.Writer) error {
	obj, err := a.layoutELF()
	if err != nil {
		return err
	}
	buf, err := obj.encode()
	if err != nil {
		return fmt.Errorf("encode elf: %w", err)
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("write elf: %w", err)
	}
	return nil
}

// elfObject is an ELF relocatable object before encoding: its sections in
// order (index 0, the null section, is implicit).
type elfObject struct {
	sections []*elfSection
}

// elfSection is one section: its header fields and contents. link and info
// name other sections by pointer and are resolved to indices when encoding.
type elfSection struct {
	name    string
	typ     elf.SectionType
	flags   elf.SectionFlag
	align   uint64
	entsize uint64
	data    []byte
	link    *elfSection
	// info is a section index (for SHT_REL) or a plain number (for SHT_SYMTAB).
	info        uint32
	infoSection *elfSection
}

// layoutELF builds every section of the artifact's object.
func (a *Artifact) layoutELF() (*elfObject, error) {
	if err := a.checkNames(); err != nil {
		return nil, err
	}
	progs := a.programs()

	mapDefs, mapOffsets, err := a.layoutMapDefinitions()
	if err != nil {
		return nil, err
	}
	btfData, btfExt, err := a.marshalBTF(progs, mapOffsets)
	if err != nil {
		return nil, err
	}
	manifest, err := encodeManifest(&a.Manifest)
	if err != nil {
		return nil, err
	}

	strtab := newStringTable()
	symtab := &elfSection{name: ".symtab", typ: elf.SHT_SYMTAB, align: 8, entsize: elf.Sym64Size}
	strsec := &elfSection{name: ".strtab", typ: elf.SHT_STRTAB, align: 1}
	maps := &elfSection{
		name:  elfSectionMaps,
		typ:   elf.SHT_PROGBITS,
		flags: elf.SHF_ALLOC | elf.SHF_WRITE,
		align: 8,
		data:  mapDefs,
	}

	// Symbols: the null symbol, then the globals (no locals are needed):
	// one function per program, one object per map.
	syms := []elf.Sym64{{}}
	progSections := make([]*elfSection, len(progs))
	progSyms := make([]int, len(progs))
	for i, p := range progs {
		insns, err := marshalInstructions(p.insns)
		if err != nil {
			return nil, err
		}
		progSections[i] = &elfSection{
			name:  p.section,
			typ:   elf.SHT_PROGBITS,
			flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR,
			align: 8,
			data:  insns,
		}
		progSyms[i] = len(syms)
		syms = append(syms, elf.Sym64{
			Name:  strtab.add(p.name),
			Info:  elf.ST_INFO(elf.STB_GLOBAL, elf.STT_FUNC),
			Value: 0,
			Size:  uint64(len(insns)),
		})
	}
	mapSym := make(map[string]uint32, len(a.Maps))
	for i, m := range a.Maps {
		mapSym[m.Name] = uint32(len(syms))
		syms = append(syms, elf.Sym64{
			Name:  strtab.add(m.Name),
			Info:  elf.ST_INFO(elf.STB_GLOBAL, elf.STT_OBJECT),
			Value: mapOffsets[i],
			Size:  mapDefinitionSize(m),
		})
	}

	obj := &elfObject{}
	obj.add(strsec)
	for i, p := range progs {
		obj.add(progSections[i])
		rels, err := mapRelocations(p.insns, mapSym)
		if err != nil {
			return nil, err
		}
		if len(rels) > 0 {
			obj.add(&elfSection{
				name:        ".rel" + p.section,
				typ:         elf.SHT_REL,
				align:       8,
				entsize:     16,
				data:        rels,
				link:        symtab,
				infoSection: progSections[i],
			})
		}
	}
	obj.add(&elfSection{
		name:  "license",
		typ:   elf.SHT_PROGBITS,
		flags: elf.SHF_ALLOC | elf.SHF_WRITE,
		align: 1,
		data:  append([]byte(a.license()), 0),
	})
	if len(a.Maps) > 0 {
		obj.add(maps)
	}
	obj.add(&elfSection{name: ManifestSection, typ: elf.SHT_PROGBITS, align: 1, data: manifest})
	obj.add(&elfSection{name: ".BTF", typ: elf.SHT_PROGBITS, align: 4, data: btfData})
	obj.add(&elfSection{name: ".BTF.ext", typ: elf.SHT_PROGBITS, align: 4, data: btfExt})
	obj.add(symtab)
	obj.add(&elfSection{name: ".shstrtab", typ: elf.SHT_STRTAB, align: 1})

	// Section indices are known now: point the symbols at their sections.
	for i := range progs {
		syms[progSyms[i]].Shndx = uint16(obj.index(progSections[i]))
	}
	for _, idx := range mapSym {
		syms[idx].Shndx = uint16(obj.index(maps))
	}
	var symbuf bytes.Buffer
	for _, s := range syms {
		if err := binary.Write(&symbuf, binary.LittleEndian, s); err != nil {
			return nil, fmt.Errorf("encode symbol: %w", err)
		}
	}
	symtab.data = symbuf.Bytes()
	symtab.link = strsec
	symtab.info = 1 // index of the first non-local symbol
	strsec.data = strtab.bytes()
	return obj, nil
}

// checkNames rejects artifacts whose names cannot become ELF symbols.
func (a *Artifact) checkNames() error {
	if a.Program == "" {
		return errors.New("write elf: artifact has no program name")
	}
	seen := map[string]bool{a.Program: true}
	if a.Egress != nil {
		if a.Egress.Name == "" || seen[a.Egress.Name] {
			return fmt.Errorf("write elf: egress program name %q is empty or taken", a.Egress.Name)
		}
		seen[a.Egress.Name] = true
	}
	for _, m := range a.Maps {
		if m.Name == "" {
			return errors.New("write elf: map without a name")
		}
		if seen[m.Name] {
			return fmt.Errorf("write elf: duplicate symbol %q", m.Name)
		}
		seen[m.Name] = true
	}
	return nil
}

func (a *Artifact) license() string {
	if a.License == "" {
		return defaultLicense
	}
	return a.License
}

// marshalInstructions encodes a program little-endian with every jump to a
// label resolved. Map loads are written as clang writes them: an ld_imm64 of
// 0 with source register 0, to be patched through a relocation.
func marshalInstructions(prog asm.Instructions) ([]byte, error) {
	insns := slices.Clone(prog)
	for i := range insns {
		if insns[i].IsLoadFromMap() && insns[i].Reference() != "" {
			insns[i].Src = asm.R0
			insns[i].Constant = 0
		}
	}
	var buf bytes.Buffer
	if err := insns.Marshal(&buf, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("marshal instructions: %w", err)
	}
	return buf.Bytes(), nil
}

// mapRelocations returns a program section's relocations (.relxdp, .reltc):
// one R_BPF_64_64 per ld_imm64 that references a map, against that map's
// symbol.
func mapRelocations(insns asm.Instructions, mapSym map[string]uint32) ([]byte, error) {
	var buf bytes.Buffer
	iter := insns.Iterate()
	for iter.Next() {
		ins := iter.Ins
		ref := ins.Reference()
		if ref == "" || ins.OpCode != asm.LoadImmOp(asm.DWord) {
			continue
		}
		sym, ok := mapSym[ref]
		if !ok {
			return nil, fmt.Errorf("relocate instruction %d: reference %q names no map", iter.Index, ref)
		}
		rel := elf.Rel64{
			Off:  uint64(iter.Offset) * asm.InstructionSize,
			Info: elf.R_INFO(sym, rBPF64_64),
		}
		if err := binary.Write(&buf, binary.LittleEndian, rel); err != nil {
			return nil, fmt.Errorf("encode relocation: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// Map definitions in .maps are structs of pointers (libbpf's __uint and
// __type macros), so every member is one 8-byte pointer.
const mapMemberSize = 8

// mapDefinitionMembers returns the number of members of m's definition.
func mapDefinitionMembers(m Map) int {
	n := 4 // type, key, value, max_entries
	if m.Flags != 0 {
		n++
	}
	return n
}

func mapDefinitionSize(m Map) uint64 {
	return uint64(mapDefinitionMembers(m) * mapMemberSize)
}

// layoutMapDefinitions returns the zero-filled .maps contents and the offset
// of each map's definition in it.
func (a *Artifact) layoutMapDefinitions() ([]byte, []uint64, error) {
	offsets := make([]uint64, len(a.Maps))
	var size uint64
	for i, m := range a.Maps {
		offsets[i] = size
		size += mapDefinitionSize(m)
	}
	return make([]byte, size), offsets, nil
}

// marshalBTF returns the .BTF and .BTF.ext contents. .BTF holds each
// program's function (int PROGRAM(struct xdp_md *ctx), or struct
// __sk_buff for the egress program), each map's definition struct, a
// global VAR per map and the DATASEC .maps placing them. .BTF.ext holds
// each program's func_info and a line_info per instruction that carries a
// source comment, so that verifier logs and disassemblers show the policy
// line an instruction came from.
func (a *Artifact) marshalBTF(progs []elfProgram, offsets []uint64) (types, ext []byte, _ error) {
	intType := &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	indexType := &btf.Int{Name: "__ARRAY_SIZE_TYPE__", Size: 4}
	// number is libbpf's __uint(name, n): a pointer to an array of n ints.
	number := func(n uint32) btf.Type {
		return &btf.Pointer{Target: &btf.Array{Index: indexType, Type: intType, Nelems: n}}
	}

	b, err := btf.NewBuilder(nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("build btf: %w", err)
	}
	fnIDs := make([]btf.TypeID, len(progs))
	for i, p := range progs {
		fn := &btf.Func{
			Name: p.name,
			Type: &btf.FuncProto{Return: intType, Params: []btf.FuncParam{
				{Name: "ctx", Type: &btf.Pointer{Target: &btf.Fwd{Name: p.context, Kind: btf.FwdStruct}}},
			}},
			Linkage: btf.GlobalFunc,
		}
		if fnIDs[i], err = b.Add(fn); err != nil {
			return nil, nil, fmt.Errorf("build btf: %w", err)
		}
	}

	if len(a.Maps) > 0 {
		sec := &btf.Datasec{Name: elfSectionMaps}
		for i, m := range a.Maps {
			def, err := mapDefinition(m, number)
			if err != nil {
				return nil, nil, err
			}
			v := &btf.Var{Name: m.Name, Type: def, Linkage: btf.GlobalVar}
			sec.Vars = append(sec.Vars, btf.VarSecinfo{Type: v, Offset: uint32(offsets[i]), Size: def.Size})
			sec.Size = uint32(offsets[i]) + def.Size
		}
		if _, err := b.Add(sec); err != nil {
			return nil, nil, fmt.Errorf("build btf: %w", err)
		}
	}

	types, err = b.Marshal(nil, &btf.MarshalOptions{Order: binary.LittleEndian})
	if err != nil {
		return nil, nil, fmt.Errorf("marshal btf: %w", err)
	}
	strs, err := newBTFStrings(types)
	if err != nil {
		return nil, nil, err
	}
	ext = a.marshalBTFExt(progs, fnIDs, strs)
	return strs.finish(), ext, nil
}

// BTF.ext record layouts (kernel struct bpf_func_info, bpf_line_info).
const (
	btfMagic        = 0xeb9f
	btfHeaderLen    = 24
	btfExtHeaderLen = 32 // with the CO-RE fields, as clang writes it
	btfFuncInfoSize = 8
	btfLineInfoSize = 16
)

// marshalBTFExt returns the .BTF.ext section: for each program's section,
// one func_info record and the line_info records of its instructions'
// source comments. The first instruction always has a line_info, as the
// kernel requires. A record's file is the policy's name (an artifact names
// no path), its line and column those the comment starts with, if any.
func (a *Artifact) marshalBTFExt(progs []elfProgram, fnIDs []btf.TypeID, strs *btfStrings) []byte {
	le := binary.LittleEndian
	file := strs.add(fmt.Sprintf("policy %q", a.Manifest.Policy))

	funcInfo := le.AppendUint32(nil, btfFuncInfoSize)
	lineInfo := le.AppendUint32(nil, btfLineInfoSize)
	for i, p := range progs {
		secName := strs.add(p.section)
		funcInfo = le.AppendUint32(funcInfo, secName)
		funcInfo = le.AppendUint32(funcInfo, 1)
		funcInfo = le.AppendUint32(funcInfo, 0) // insn_off
		funcInfo = le.AppendUint32(funcInfo, uint32(fnIDs[i]))

		var records []byte
		n := uint32(0)
		iter := p.insns.Iterate()
		for iter.Next() {
			line := ""
			if src := iter.Ins.Source(); src != nil {
				line = src.String()
			} else if iter.Index != 0 {
				continue
			} else {
				line = p.name
			}
			records = le.AppendUint32(records, uint32(iter.Offset)*asm.InstructionSize)
			records = le.AppendUint32(records, file)
			records = le.AppendUint32(records, strs.add(line))
			records = le.AppendUint32(records, lineCol(line))
			n++
		}
		lineInfo = le.AppendUint32(lineInfo, secName)
		lineInfo = le.AppendUint32(lineInfo, n)
		lineInfo = append(lineInfo, records...)
	}

	ext := le.AppendUint16(nil, btfMagic)
	ext = append(ext, 1, 0) // version, flags
	ext = le.AppendUint32(ext, btfExtHeaderLen)
	ext = le.AppendUint32(ext, 0) // func_info_off
	ext = le.AppendUint32(ext, uint32(len(funcInfo)))
	ext = le.AppendUint32(ext, uint32(len(funcInfo))) // line_info_off
	ext = le.AppendUint32(ext, uint32(len(lineInfo)))
	ext = le.AppendUint32(ext, uint32(len(funcInfo)+len(lineInfo))) // core_relo_off
	ext = le.AppendUint32(ext, 0)                                   // core_relo_len
	ext = append(ext, funcInfo...)
	return append(ext, lineInfo...)
}

// lineCol is the line_col field of a line_info record (line << 10 |
// column, 0 when unknown) for a source comment.
func lineCol(src string) uint32 {
	p, ok := SourcePos(src)
	if !ok || p.Line >= 1<<22 {
		return 0
	}
	return uint32(p.Line)<<10 | uint32(min(p.Col, 1<<10-1))
}

// btfStrings appends strings to the string section of marshalled BTF, which
// comes last in the blob.
type btfStrings struct {
	buf   []byte
	orig  int    // length of the blob before any addition
	base  uint32 // length of the string section before any addition
	added map[string]uint32
}

func newBTFStrings(data []byte) (*btfStrings, error) {
	le := binary.LittleEndian
	if len(data) < btfHeaderLen || le.Uint16(data) != btfMagic {
		return nil, errors.New("marshal btf: unexpected header")
	}
	hdrLen, strOff, strLen := le.Uint32(data[4:]), le.Uint32(data[16:]), le.Uint32(data[20:])
	if uint64(hdrLen)+uint64(strOff)+uint64(strLen) != uint64(len(data)) {
		return nil, errors.New("marshal btf: string section is not last")
	}
	return &btfStrings{buf: data, orig: len(data), base: strLen, added: map[string]uint32{"": 0}}, nil
}

// add returns the offset of s in the string section.
func (s *btfStrings) add(str string) uint32 {
	if off, ok := s.added[str]; ok {
		return off
	}
	off := s.base + uint32(len(s.buf)-s.orig)
	s.buf = append(append(s.buf, str...), 0)
	s.added[str] = off
	return off
}

// finish returns the blob with the string section's length updated.
func (s *btfStrings) finish() []byte {
	binary.LittleEndian.PutUint32(s.buf[20:], s.base+uint32(len(s.buf)-s.orig))
	return s.buf
}

// mapDefinition returns the anonymous struct libbpf's map macros produce for
// m: type, key, value, max_entries and, when set, map_flags.
func mapDefinition(m Map, number func(uint32) btf.Type) (*btf.Struct, error) {
	key, err := mapKeyMember(m, "key", m.Key, m.KeySize, number)
	if err != nil {
		return nil, err
	}
	value, err := mapKeyMember(m, "value", m.Value, m.ValueSize, number)
	if err != nil {
		return nil, err
	}
	members := []btf.Member{
		{Name: "type", Type: number(uint32(m.Type))},
		key,
		value,
		{Name: "max_entries", Type: number(m.MaxEntries)},
	}
	if m.Flags != 0 {
		members = append(members, btf.Member{Name: "map_flags", Type: number(m.Flags)})
	}
	for i := range members {
		members[i].Offset = btf.Bits(i * mapMemberSize * 8)
	}
	return &btf.Struct{Size: uint32(len(members) * mapMemberSize), Members: members}, nil
}

// mapKeyMember returns the key or value member of m's definition: a pointer
// to its BTF type (__type), or its size alone (__uint(key_size, n)) when m
// has no type.
func mapKeyMember(m Map, name string, typ btf.Type, size uint32, number func(uint32) btf.Type) (btf.Member, error) {
	if typ == nil {
		return btf.Member{Name: name + "_size", Type: number(size)}, nil
	}
	got, err := btf.Sizeof(typ)
	if err != nil {
		return btf.Member{}, fmt.Errorf("map %s: size %s type: %w", m.Name, name, err)
	}
	if uint32(got) != size {
		return btf.Member{}, fmt.Errorf("map %s: %s type has %d bytes, want %d", m.Name, name, got, size)
	}
	return btf.Member{Name: name, Type: &btf.Pointer{Target: typ}}, nil
}

// stringTable is an ELF string table under construction.
type stringTable struct {
	buf   []byte
	index map[string]uint32
}

func newStringTable() *stringTable {
	return &stringTable{buf: []byte{0}, index: map[string]uint32{"": 0}}
}

// add returns the offset of s, appending it on first use.
func (t *stringTable) add(s string) uint32 {
	if off, ok := t.index[s]; ok {
		return off
	}
	off := uint32(len(t.buf))
	t.buf = append(append(t.buf, s...), 0)
	t.index[s] = off
	return off
}

func (t *stringTable) bytes() []byte { return t.buf }

func (o *elfObject) add(s *elfSection) { o.sections = append(o.sections, s) }

// index returns s's section header index.
func (o *elfObject) index(s *elfSection) int {
	i := slices.Index(o.sections, s)
	if i < 0 {
		panic(fmt.Sprintf("artifact: section %s not in object", s.name))
	}
	return i + 1
}

// encode returns the object file: the ELF header, the section contents in
// order, then the section header table.
func (o *elfObject) encode() ([]byte, error) {
	shstrtab := newStringTable()
	names := make([]uint32, len(o.sections))
	for i, s := range o.sections {
		names[i] = shstrtab.add(s.name)
	}
	last := o.sections[len(o.sections)-1]
	if last.name != ".shstrtab" {
		panic("artifact: .shstrtab must be the last section")
	}
	last.data = shstrtab.bytes()

	var out bytes.Buffer
	out.Write(make([]byte, elfHeaderSize)) // written last, once offsets are known
	headers := []elf.Section64{{}}
	for i, s := range o.sections {
		pad(&out, s.align)
		h := elf.Section64{
			Name:      names[i],
			Type:      uint32(s.typ),
			Flags:     uint64(s.flags),
			Off:       uint64(out.Len()),
			Size:      uint64(len(s.data)),
			Addralign: s.align,
			Entsize:   s.entsize,
			Info:      s.info,
		}
		if s.link != nil {
			h.Link = uint32(o.index(s.link))
		}
		if s.infoSection != nil {
			h.Info = uint32(o.index(s.infoSection))
		}
		out.Write(s.data)
		headers = append(headers, h)
	}
	pad(&out, 8)
	shoff := out.Len()
	for _, h := range headers {
		if err := binary.Write(&out, binary.LittleEndian, h); err != nil {
			return nil, err
		}
	}

	hdr := elf.Header64{
		Type:      uint16(elf.ET_REL),
		Machine:   uint16(elf.EM_BPF),
		Version:   uint32(elf.EV_CURRENT),
		Shoff:     uint64(shoff),
		Ehsize:    elfHeaderSize,
		Shentsize: elfSectionHeaderSize,
		Shnum:     uint16(len(headers)),
		Shstrndx:  uint16(len(headers) - 1),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	hdr.Ident[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)
	buf := out.Bytes()
	var hb bytes.Buffer
	if err := binary.Write(&hb, binary.LittleEndian, hdr); err != nil {
		return nil, err
	}
	copy(buf, hb.Bytes())
	return buf, nil
}

// pad appends zeros to b up to a multiple of align.
func pad(b *bytes.Buffer, align uint64) {
	if align <= 1 {
		return
	}
	for uint64(b.Len())%align != 0 {
		b.WriteByte(0)
	}
}
