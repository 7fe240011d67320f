package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ethPAll is ETH_P_ALL in network byte order, as AF_PACKET wants it.
var ethPAll = htons(unix.ETH_P_ALL)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// injector writes raw frames out of one interface with an AF_PACKET socket
// that receives nothing (protocol 0). An injector that bypasses the qdisc
// hands frames straight to the driver; one that does not sends them the
// way the host's own traffic goes, through the interface's TC egress hook.
type injector struct {
	fd      int
	ifindex int
}

func newInjector(ns netns.NsHandle, ifindex int, bypassQdisc bool) (*injector, error) {
	inj := &injector{fd: -1, ifindex: ifindex}
	err := inNamespace(ns, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		inj.fd = fd
		if !bypassQdisc {
			return nil
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("bypass qdisc: %w", err)
		}
		return nil
	})
	if err != nil {
		inj.close()
		return nil, err
	}
	return inj, nil
}

// send writes frame as it is. The kernel refuses frames shorter than an
// Ethernet header (EINVAL).
func (inj *injector) send(frame []byte) error {
	proto := uint16(0)
	if len(frame) >= 14 {
		proto = binary.BigEndian.Uint16(frame[12:14])
	}
	sa := &unix.SockaddrLinklayer{Ifindex: inj.ifindex, Protocol: htons(proto)}
	if err := unix.Sendto(inj.fd, frame, 0, sa); err != nil {
		return fmt.Errorf("inject %d-byte frame: %w", len(frame), err)
	}
	return nil
}

func (inj *injector) close() {
	if inj.fd >= 0 {
		unix.Close(inj.fd)
		inj.fd = -1
	}
}

// capture receives every frame one interface receives, as AF_PACKET sees it:
// after XDP, with a VLAN tag the stack stripped put back from the socket's
// auxiliary data, so the bytes are the frame as it arrived. An outgoing
// capture receives the frames the interface sends instead, as they leave:
// after its TC egress hook.
type capture struct {
	fd  int
	buf []byte
	oob []byte
	// ignore, when set, passes over the received frames it reports: frames
	// that are not any injected frame's fate (the router's own).
	ignore func(frame []byte) bool
	// outgoing: the frames the interface sends, not those it receives.
	outgoing bool
}

func newCapture(ns netns.NsHandle, ifindex int) (*capture, error) {
	c := &capture{fd: -1, buf: make([]byte, 65536+4), oob: make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))}
	err := inNamespace(ns, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(ethPAll))
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		c.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ethPAll, Ifindex: ifindex}); err != nil {
			return fmt.Errorf("bind packet socket to interface %d: %w", ifindex, err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return fmt.Errorf("ask for packet auxdata: %w", err)
		}
		return nil
	})
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// errNoFrame is returned by next when no frame arrived before the deadline.
var errNoFrame = errors.New("no frame arrived")

// maxSkipped bounds how many outgoing or ignored frames one call to next
// passes over.
const maxSkipped = 10_000

// next returns the next frame the interface received (or, outgoing, sent;
// frames the other way and those ignore reports are skipped), waiting until
// deadline at most. A zero deadline only looks.
func (c *capture) next(deadline time.Time) ([]byte, error) {
	for skipped := 0; ; {
		n, oobn, flags, from, err := unix.Recvmsg(c.fd, c.buf, c.oob, unix.MSG_TRUNC)
		if errors.Is(err, unix.EAGAIN) {
			wait := time.Until(deadline)
			if wait <= 0 {
				return nil, errNoFrame
			}
			fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(fds, int(wait/time.Millisecond)+1); err != nil && !errors.Is(err, unix.EINTR) {
				return nil, fmt.Errorf("wait for frames: %w", err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("receive frame: %w", err)
		}
		if sll, ok := from.(*unix.SockaddrLinklayer); ok && (sll.Pkttype == unix.PACKET_OUTGOING) != c.outgoing {
			if skipped++; skipped > maxSkipped {
				return nil, fmt.Errorf("more than %d frames the other way while waiting for one", maxSkipped)
			}
			continue
		}
		if flags&unix.MSG_TRUNC != 0 || n > len(c.buf) {
			return nil, fmt.Errorf("received a frame longer than %d bytes", len(c.buf))
		}
		frame, err := withVLANTag(append([]byte(nil), c.buf[:n]...), c.oob[:oobn])
		if err == nil && c.ignore != nil && c.ignore(frame) {
			if skipped++; skipped > maxSkipped {
				return nil, fmt.Errorf("more than %d ignored frames while waiting for one", maxSkipped)
			}
			continue
		}
		return frame, err
	}
}

// withVLANTag puts back the VLAN tag that the stack moved from frame into
// the socket's auxiliary data, if any.
func withVLANTag(frame, oob []byte) ([]byte, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse packet auxdata: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA {
			continue
		}
		if len(m.Data) < int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
			return nil, fmt.Errorf("packet auxdata of %d bytes", len(m.Data))
		}
		aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
		if aux.Status&unix.TP_STATUS_VLAN_VALID == 0 || len(frame) < 12 {
			return frame, nil
		}
		tpid := uint16(unix.ETH_P_8021Q)
		if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			tpid = aux.Vlan_tpid
		}
		tagged := make([]byte, 0, len(frame)+4)
		tagged = append(tagged, frame[:12]...)
		tagged = binary.BigEndian.AppendUint16(tagged, tpid)
		tagged = binary.BigEndian.AppendUint16(tagged, aux.Vlan_tci)
		return append(tagged, frame[12:]...), nil
	}
	return frame, nil
}

func (c *capture) close() {
	if c.fd >= 0 {
		unix.Close(c.fd)
		c.fd = -1
	}
}
