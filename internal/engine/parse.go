package engine

import (
	"bytes"
	"errors"
	"math"
	"strconv"
)

// Reading is what one read of an engine's page said, before rates: each
// field's figure where the page had it.
type Reading struct {
	Engine string
	vals   [numFields]float64
	has    [numFields]bool
	// Progress is the sum of the families that move with every step of
	// the engine; HasProgress is false where the engine has none.
	Progress    float64
	HasProgress bool
	// Malformed counts sample lines of known families that did not
	// parse; Series the samples of known families read.
	Malformed, Series int
}

// Get is field f's figure, and whether the page had it.
func (r *Reading) Get(f Field) (float64, bool) { return r.vals[f], r.has[f] }

func (r *Reading) set(f Field, v float64) { r.vals[f], r.has[f] = v, true }

// ErrNoEngine is a page with no family of any engine the table knows.
var ErrNoEngine = errors.New("no known engine's metrics")

// Bounds on what one page may make the parser keep: shards per family
// (data-parallel ranks), labels per sample, bytes of one label value.
const (
	maxShards     = 64
	maxLabels     = 64
	maxLabelValue = 4 << 10
)

type shard struct {
	key string
	v   float64
}

// Parser reads pages; it keeps its buffers from read to read. One read
// at a time.
type Parser struct {
	shards [][]shard // by family row
	labels []label
	scr    []byte // unescaped label values
}

type label struct{ name, value []byte }

// NewParser returns a parser for the table's families.
func NewParser() *Parser {
	return &Parser{shards: make([][]shard, len(families))}
}

// Parse reads a page in the Prometheus text format (version 0.0.4, what
// every engine serves) into r. Only samples of the table's families are
// parsed past their name; a line that does not parse is skipped and
// counted, as a scraper keeps what it can of a page. ErrNoEngine: the page
// has no family the table knows.
func (p *Parser) Parse(page []byte, r *Reading) error {
	*r = Reading{}
	for i := range p.shards {
		p.shards[i] = p.shards[i][:0]
	}
	for len(page) > 0 {
		var line []byte
		if i := bytes.IndexByte(page, '\n'); i >= 0 {
			line, page = page[:i], page[i+1:]
		} else {
			line, page = page, nil
		}
		line = bytes.TrimLeft(line, " \t")
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		end := nameEnd(line)
		rows, ok := byName[string(line[:end])]
		if !ok {
			continue
		}
		if r.Engine == "" {
			r.Engine = families[rows[0]].engine
		} else if families[rows[0]].engine != r.Engine {
			continue // another engine's family on the same page: the first one's page
		}
		r.Series++
		if !p.sample(line[end:], rows, r.Engine) {
			r.Malformed++
		}
	}
	if r.Engine == "" {
		return ErrNoEngine
	}
	p.fold(r)
	return nil
}

// nameEnd is where a sample line's metric name ends.
func nameEnd(line []byte) int {
	for i, c := range line {
		if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return i
		}
	}
	return len(line)
}

// sample parses the rest of a line of a known family (labels, value,
// optional timestamp) and records it for each of its rows.
func (p *Parser) sample(rest []byte, rows []int, engine string) bool {
	p.labels, p.scr = p.labels[:0], p.scr[:0]
	rest = bytes.TrimLeft(rest, " \t")
	if len(rest) > 0 && rest[0] == '{' {
		var ok bool
		if rest, ok = p.parseLabels(rest[1:]); !ok {
			return false
		}
		rest = bytes.TrimLeft(rest, " \t")
	}
	tok := rest
	if i := bytes.IndexAny(rest, " \t"); i >= 0 {
		tok = rest[:i]
		if ts := bytes.TrimSpace(rest[i:]); len(ts) > 0 {
			if _, err := strconv.ParseInt(string(ts), 10, 64); err != nil {
				return false
			}
		}
	}
	v, err := strconv.ParseFloat(string(bytes.TrimRight(tok, "\r")), 64)
	if err != nil {
		return false
	}
	for _, row := range rows {
		p.record(row, engine, v)
	}
	return true
}

// parseLabels reads `name="value",...}` into p.labels, unescaping the
// values, and returns what follows the closing brace.
func (p *Parser) parseLabels(b []byte) ([]byte, bool) {
	for {
		b = bytes.TrimLeft(b, " \t")
		if len(b) > 0 && b[0] == '}' {
			return b[1:], true
		}
		n := 0
		for n < len(b) && (b[n] == '_' || b[n] >= 'a' && b[n] <= 'z' || b[n] >= 'A' && b[n] <= 'Z' || n > 0 && b[n] >= '0' && b[n] <= '9') {
			n++
		}
		name := b[:n]
		b = bytes.TrimLeft(b[n:], " \t")
		if n == 0 || len(b) < 2 || b[0] != '=' {
			return nil, false
		}
		b = bytes.TrimLeft(b[1:], " \t")
		if len(b) == 0 || b[0] != '"' {
			return nil, false
		}
		start := len(p.scr)
		i := 1
		for ; i < len(b) && b[i] != '"'; i++ {
			c := b[i]
			if c == '\\' {
				if i++; i == len(b) {
					return nil, false
				}
				switch b[i] {
				case '\\', '"':
					c = b[i]
				case 'n':
					c = '\n'
				default:
					return nil, false
				}
			}
			p.scr = append(p.scr, c)
		}
		if i == len(b) || len(p.scr)-start > maxLabelValue || len(p.labels) == maxLabels {
			return nil, false
		}
		p.labels = append(p.labels, label{name: name, value: p.scr[start:len(p.scr):len(p.scr)]})
		b = bytes.TrimLeft(b[i+1:], " \t")
		if len(b) > 0 && b[0] == ',' {
			b = b[1:]
		} else if len(b) == 0 || b[0] != '}' {
			return nil, false
		}
	}
}

func (p *Parser) label(name string) ([]byte, bool) {
	for _, l := range p.labels {
		if string(l.name) == name {
			return l.value, true
		}
	}
	return nil, false
}

// record keeps one sample for a row: the largest value of its shard.
func (p *Parser) record(row int, engine string, v float64) {
	f := &families[row]
	if f.where[0] != "" {
		if w, ok := p.label(f.where[0]); !ok || string(w) != f.where[1] {
			return
		}
	}
	if f.agg == info {
		// vLLM's capacity: kv_cache_size_tokens where it has it, else
		// num_gpu_blocks × block_size.
		if t, ok := p.labelNumber("kv_cache_size_tokens"); ok {
			v = t
		} else if blocks, ok := p.labelNumber("num_gpu_blocks"); ok {
			size, ok := p.labelNumber("block_size")
			if !ok {
				return
			}
			v = blocks * size
		} else {
			return
		}
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return // no figure: an engine's NaN is not a number to send
	}
	key, _ := p.label(shardLabel[engine])
	ss := p.shards[row]
	for i := range ss {
		if ss[i].key == string(key) {
			ss[i].v = max(ss[i].v, v)
			return
		}
	}
	if len(ss) < maxShards {
		p.shards[row] = append(ss, shard{key: string(key), v: v})
	}
}

func (p *Parser) labelNumber(name string) (float64, bool) {
	b, ok := p.label(name)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(b), 64)
	return v, err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0
}

// fold adds each row's shards into r's fields, the first row present
// winning for each field, and the progress rows into r.Progress.
func (p *Parser) fold(r *Reading) {
	for row, ss := range p.shards {
		if len(ss) == 0 {
			continue
		}
		f := &families[row]
		var total float64
		for _, s := range ss {
			total += s.v
		}
		if f.agg == mean {
			total /= float64(len(ss))
		}
		if f.progress {
			r.Progress += total
			r.HasProgress = true
		}
		if f.field != progressOnly && !r.has[f.field] {
			r.set(f.field, total)
		}
	}
}
