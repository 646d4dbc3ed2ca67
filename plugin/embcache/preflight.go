package embcache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
)

// bbolt's on-disk format (version 2, unchanged since boltdb 1.0), as far as
// preflight needs it. Native byte order, as bbolt writes it.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltPageHeader   = 16 // id u64, flags u16, count u16, overflow u32
	boltMetaSize     = 64 // see metaAt
	boltFreelistFlag = 0x10
	boltNoFreelist   = ^uint64(0)
)

type boltMeta struct {
	pageSize                  uint64
	root, freelist, pgid, txn uint64
}

// metaAt decodes and checks the meta page at off: magic, version, FNV-64a
// checksum. Layout after the page header: magic u32, version u32, pageSize
// u32, flags u32, root pgid u64, root sequence u64, freelist pgid u64, high
// water mark pgid u64, txid u64, checksum u64.
func metaAt(f *os.File, off int64) (boltMeta, bool) {
	var b [boltPageHeader + boltMetaSize]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		return boltMeta{}, false
	}
	m := b[boltPageHeader:]
	ne := binary.NativeEndian
	h := fnv.New64a()
	h.Write(m[:56])
	if ne.Uint32(m[0:]) != boltMagic || ne.Uint32(m[4:]) != boltVersion || ne.Uint64(m[56:]) != h.Sum64() {
		return boltMeta{}, false
	}
	return boltMeta{
		pageSize: uint64(ne.Uint32(m[8:])),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		pgid:     ne.Uint64(m[40:]),
		txn:      ne.Uint64(m[48:]),
	}, true
}

// preflight checks an existing, non-empty file with plain reads before bbolt
// maps it: that it has a valid meta page and reaches the pages that meta
// claims. A truncated file would otherwise make bbolt fault on its memory
// map while opening; that fault is recoverable, but bbolt hands out the DB
// only at the end of Open, so its mapping, and with it the file lock, would
// leak until the process exits, and the same file could not even be reported
// again. preflight runs before the lock is taken, so it checks only what a
// healthy file that another Cache is writing always satisfies: the meta is
// read before the size, bbolt grows the file before it writes a meta that
// points past the old end, and never shrinks it.
func preflight(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // bbolt creates it
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil || info.Size() == 0 {
		return err // bbolt initialises an empty file
	}
	// Meta page 0 at offset 0 names the page size; if it is damaged, look
	// for meta page 1 where bbolt does, at 1 KiB << i.
	var best boltMeta
	found := false
	consider := func(off int64) {
		m, ok := metaAt(f, off)
		if ok && m.pageSize >= 1024 && m.pageSize <= 1<<20 && (off == 0 || uint64(off) == m.pageSize) &&
			(!found || m.txn > best.txn) {
			best, found = m, true
		}
	}
	consider(0)
	if found {
		consider(int64(best.pageSize))
	} else {
		for i := range 15 {
			consider(int64(1024) << i)
		}
	}
	if !found {
		return fmt.Errorf("%w: not a valid bbolt file (no meta page with a valid checksum)", ErrCorrupt)
	}
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if best.pgid < 2 || best.pgid > uint64(info.Size())/best.pageSize {
		return fmt.Errorf("%w: file is %d bytes but its pages reach %d (truncated)", ErrCorrupt, info.Size(), best.pgid*best.pageSize)
	}
	if best.root < 2 || best.root >= best.pgid ||
		best.freelist != boltNoFreelist && (best.freelist < 2 || best.freelist >= best.pgid) {
		return fmt.Errorf("%w: meta page points outside the file's %d pages", ErrCorrupt, best.pgid)
	}
	if best.freelist == boltNoFreelist {
		return nil
	}
	if err := checkFreelist(f, best); err != nil {
		return fmt.Errorf("%w: page %d: %v", errFreelist, best.freelist, err)
	}
	return nil
}

// errFreelist: the freelist page, which bbolt reads (and panics on) while
// opening, is damaged. Unlike the other preflight findings, a live writer can
// cause it (it frees and reuses freelist pages), so open confirms it under a
// shared lock.
var errFreelist = fmt.Errorf("%w: freelist damaged", ErrCorrupt)

// checkFreelist checks the freelist page of m as bbolt will read it: its
// header, and that it lists distinct pages below the high water mark in
// ascending order.
func checkFreelist(f *os.File, m boltMeta) error {
	var hdr [boltPageHeader + 8]byte
	off := int64(m.freelist * m.pageSize)
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return err
	}
	ne := binary.NativeEndian
	id, flags := ne.Uint64(hdr[0:]), ne.Uint16(hdr[8:])
	count, overflow := uint64(ne.Uint16(hdr[10:])), uint64(ne.Uint32(hdr[12:]))
	skip := uint64(0)
	if count == 0xffff { // the real count is the first element
		count, skip = ne.Uint64(hdr[boltPageHeader:]), 1
	}
	room := ((overflow+1)*m.pageSize - boltPageHeader) / 8 // ids the pages hold
	if id != m.freelist || flags != boltFreelistFlag || m.freelist+overflow >= m.pgid ||
		count > m.pgid || count > room-skip {
		return fmt.Errorf("bad header (id %d, flags %#x, count %d, overflow %d)", id, flags, count, overflow)
	}
	ids := make([]byte, count*8)
	if _, err := f.ReadAt(ids, off+boltPageHeader+int64(skip*8)); err != nil {
		return err
	}
	prev := uint64(1)
	for i := range count {
		pg := ne.Uint64(ids[8*i:])
		if pg <= prev || pg >= m.pgid {
			return fmt.Errorf("free page %d out of order or range", pg)
		}
		prev = pg
	}
	return nil
}
