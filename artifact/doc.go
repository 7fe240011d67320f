// Package artifact is the datapath contract between the compiler, which
// writes artifacts, and the runtime and the lab, which load them. Every
// fact both sides rely on is defined here, once:
//
//   - the ELF object of one XDP program and the blueprints of its maps
//     (Artifact, Map, WriteELF, Disassemble), and Read, which turns the
//     bytes back into a cilium/ebpf collection spec and the Manifest and
//     checks that they agree;
//   - the kinds of map xdpc uses and their layouts (MapKind: BPF type, key
//     and value sizes and BTF, whether kept across applies; Counter, the
//     counter map's value), where a new kind of map is declared;
//   - the counter slot table (CounterTable, CounterSlot, SlotKind): what
//     each slot counts, whether it decides, and its identity (SlotID, name
//     and kind, not source position);
//   - XDP actions (Action);
//   - set types and typed elements (SetType, Elements: netip.Prefix,
//     PortRange, MAC), their parsing from text by the policy language's
//     rules (ParsePrefix, ParsePortRange, ParseMAC, ParseNumberRange) and
//     their map keys (LPMKey, PortKey, MACKey, SetMap.Entries);
//   - source positions without a file (Pos) and the convention of source
//     comments that start with one (SourcePos, SourceInFile).
//
// An artifact depends only on the policy it was compiled from, not on the
// path it was read from or the host: the same policy gives the same bytes.
//
// It is the bottom of xdpc's import graph: it imports the standard library
// and cilium/ebpf (asm and btf to describe programs and maps, the ELF
// reader to read them back) and nothing of xdpc, so the runtime loads an
// artifact without the compiler or the policy language, and the policy
// checker can use its element parsers. Nothing here touches the kernel.
//
// Errors: WriteELF refuses an artifact that cannot become a valid object
// (a missing name, a reference to no map, a BTF type of the wrong size);
// Read refuses bytes that are not an artifact of this ManifestFormat, or
// whose manifest and object disagree. Element parsers and SetMap.Entries
// return errors that wrap ErrBadElement (an *ElementError, in the policy
// language's words, with a *HostBitsError or *NumberError inside when that
// is the reason; ParseElements returns ElementErrors, one per bad element). An
// unknown MapKind passed to Layout is a bug in xdpc and panics.
package artifact
