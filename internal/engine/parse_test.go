package engine

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rbee/hive/internal/engine/enginetest"
)

func fixture(t testing.TB, name string) string {
	t.Helper()
	s, err := enginetest.Fixture(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// expfmtParse is expfmt's reading of a page, which must succeed: the
// fixtures are valid pages.
func expfmtParse(t testing.TB, page []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("expfmt refuses the page: %v", err)
	}
	return fams
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return math.NaN()
}

// Every fixture page, with figures set, reads back as set, and agrees
// with expfmt's reading of the same page.
func TestParseFixtures(t *testing.T) {
	cases := []struct {
		file, engine string
		set          map[string]float64
		want         map[Field]float64
		absent       []Field
	}{
		{"vllm-0.10.txt", VLLM, map[string]float64{"queue": 12, "running": 8, "kv": 0.83, "kvcap": 524288, "blocks": 32768, "prompt": 1.5e6, "gen": 412345, "preempt": 3},
			map[Field]float64{Queue: 12, Running: 8, KVUsedRatio: 0.83, KVCapacity: 524288, PromptTokens: 1.5e6, GenTokens: 412345, Preemptions: 3}, []Field{KVUsedTokens}},
		// Before 0.9: gpu_cache_usage_perc only, capacity from blocks × block size.
		{"vllm-0.8.txt", VLLM, map[string]float64{"queue": 2, "running": 1, "kv": 0.5, "blocks": 1000},
			map[Field]float64{Queue: 2, Running: 1, KVUsedRatio: 0.5, KVCapacity: 16000}, nil},
		// Two data-parallel engines: counts add up, the ratio is their mean.
		{"vllm-0.10-dp2.txt", VLLM, map[string]float64{"queue.0": 3, "queue.1": 5, "running.0": 4, "running.1": 6, "kv.0": 0.2, "kv.1": 0.6, "kvcap.0": 1000, "kvcap.1": 3000, "gen.0": 10, "gen.1": 32},
			map[Field]float64{Queue: 8, Running: 10, KVUsedRatio: 0.4, KVCapacity: 4000, GenTokens: 42}, nil},
		// Two tensor-parallel ranks tell the same figures: not doubled.
		{"sglang.txt", SGLang, map[string]float64{"queue": 7, "running": 5, "kv": 0.25, "kvused": 36000, "kvcap": 144000, "prompt": 9000, "gen": 4000},
			map[Field]float64{Queue: 7, Running: 5, KVUsedRatio: 0.25, KVUsedTokens: 36000, KVCapacity: 144000, PromptTokens: 9000, GenTokens: 4000}, []Field{Preemptions}},
		{"llamacpp.txt", LlamaCPP, map[string]float64{"queue": 1, "running": 4, "prompt": 777, "gen": 555},
			map[Field]float64{Queue: 1, Running: 4, PromptTokens: 777, GenTokens: 555}, []Field{KVUsedRatio, KVCapacity, Preemptions}},
		{"tgi.txt", TGI, map[string]float64{"queue": 9, "running": 32, "kvused": 20480},
			map[Field]float64{Queue: 9, Running: 32, KVUsedTokens: 20480}, []Field{KVUsedRatio, PromptTokens, GenTokens}},
	}
	p := NewParser()
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			e := enginetest.New(fixture(t, c.file))
			for k, v := range c.set {
				e.Set(k, v)
			}
			page := e.Render()
			ref := expfmtParse(t, page)
			var r Reading
			if err := p.Parse(page, &r); err != nil {
				t.Fatal(err)
			}
			if r.Engine != c.engine || r.Malformed != 0 {
				t.Fatalf("engine %q, %d malformed", r.Engine, r.Malformed)
			}
			for f, want := range c.want {
				if got, ok := r.Get(f); !ok || math.Abs(got-want) > 1e-9 {
					t.Errorf("field %d: %v (%v), want %v", f, got, ok, want)
				}
			}
			for _, f := range c.absent {
				if v, ok := r.Get(f); ok {
					t.Errorf("field %d: %v, want absent (the engine has no such figure)", f, v)
				}
			}
			// Against expfmt's reading of the same page.
			want, ok := reference(ref, c.engine)
			if !ok {
				t.Fatal("no reference")
			}
			for field, v := range want {
				if got, _ := r.Get(field); math.Abs(got-v) > 1e-9 {
					t.Errorf("field %d: %v, expfmt's reading gives %v", field, got, v)
				}
			}
		})
	}
}

// Progress is the sum of the families that move with every step:
// vLLM's token counters, SGLang's realtime tokens (decode and prefill
// computed, not its per-request counters), llama.cpp's decode calls;
// TGI has none.
func TestParseProgress(t *testing.T) {
	for file, c := range map[string]struct {
		set  map[string]float64
		want float64
		has  bool
	}{
		"vllm-0.10.txt": {map[string]float64{"prompt": 100, "gen": 50}, 150, true},
		"sglang.txt":    {map[string]float64{"rt_decode": 70, "rt_prefill_compute": 30, "rt_prefill_cache": 1000, "gen": 5}, 100, true},
		"llamacpp.txt":  {map[string]float64{"decode": 812, "gen": 5}, 812, true},
		"tgi.txt":       {nil, 0, false},
	} {
		e := enginetest.New(fixture(t, file))
		for k, v := range c.set {
			e.Set(k, v)
		}
		var r Reading
		if err := NewParser().Parse(e.Render(), &r); err != nil {
			t.Fatal(err)
		}
		if r.Progress != c.want || r.HasProgress != c.has {
			t.Errorf("%s: progress %v (%v), want %v (%v)", file, r.Progress, r.HasProgress, c.want, c.has)
		}
	}
}

// Pages no engine wrote, and hostile ones: no engine, lines that do not
// parse skipped and counted, NaN not a figure, escapes in label values
// read as the format says, bounds on labels and shards.
func TestParseHostile(t *testing.T) {
	p := NewParser()
	var r Reading
	if err := p.Parse([]byte("<html>not metrics</html>\n\x00\xff garbage {"), &r); err != ErrNoEngine {
		t.Errorf("garbage: %v, want ErrNoEngine", err)
	}
	if err := p.Parse(enginetest.Big(1<<20), &r); err != ErrNoEngine {
		t.Errorf("10,000 unknown families: %v", err)
	}
	page := strings.Join([]string{
		`vllm:num_requests_waiting{model_name="a\"b\\c\nd",engine="0"} 4`,
		`vllm:num_requests_running{engine="0" 3`,      // no closing brace
		`vllm:num_requests_running{engine="0"} three`, // no number
		`vllm:num_requests_running{engine="0",x="\q"} 3`,
		`vllm:kv_cache_usage_perc{engine="0"} NaN`,
		`vllm:generation_tokens_total{engine="0"} 10 1796379184000`,
		"vllm:prompt_tokens_total{" + strings.Repeat(`a="b",`, 100) + "} 9",
	}, "\n")
	if err := p.Parse([]byte(page), &r); err != nil {
		t.Fatal(err)
	}
	if q, ok := r.Get(Queue); !ok || q != 4 {
		t.Errorf("queue %v %v: a label value with escapes broke the line", q, ok)
	}
	if _, ok := r.Get(Running); ok {
		t.Error("running from lines that do not parse")
	}
	if _, ok := r.Get(KVUsedRatio); ok {
		t.Error("NaN taken for a figure")
	}
	if g, ok := r.Get(GenTokens); !ok || g != 10 {
		t.Errorf("a sample with a timestamp: %v %v", g, ok)
	}
	if _, ok := r.Get(PromptTokens); ok {
		t.Error("a sample with 100 labels kept")
	}
	if r.Malformed != 4 {
		t.Errorf("%d malformed, want 4", r.Malformed)
	}
	var shards strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&shards, "vllm:num_requests_waiting{engine=\"%d\"} 1\n", i)
	}
	if err := p.Parse([]byte(shards.String()), &r); err != nil {
		t.Fatal(err)
	}
	if q, _ := r.Get(Queue); q != maxShards {
		t.Errorf("1000 shards summed to %v, want the first %d", q, maxShards)
	}
}

func TestParseSlots(t *testing.T) {
	var r Reading
	if err := ParseSlots([]byte(fixture(t, "llamacpp-slots.json")), &r); err != nil {
		t.Fatal(err)
	}
	if run, _ := r.Get(Running); run != 1 || r.Engine != LlamaCPP {
		t.Errorf("running %v, engine %q", run, r.Engine)
	}
	if c, _ := r.Get(KVCapacity); c != 8192 {
		t.Errorf("capacity %v, want two slots of 4096", c)
	}
	if _, ok := r.Get(Queue); ok || r.HasProgress {
		t.Error("/slots has no queue and no progress")
	}
	old := `[{"id":0,"state":1,"n_ctx":2048},{"id":1,"state":0,"n_ctx":2048}]`
	if err := ParseSlots([]byte(old), &r); err != nil {
		t.Fatal(err)
	}
	if run, _ := r.Get(Running); run != 1 {
		t.Errorf("older slots: running %v", run)
	}
	for _, bad := range []string{`{"error":"not found"}`, `[]`, `[{"id":0}]`, `garbage`} {
		if err := ParseSlots([]byte(bad), &r); err == nil {
			t.Errorf("%s read as slots", bad)
		}
	}
}

// reference is what the table makes of expfmt's reading of a page, for
// the figures read from plain families (gauges, counters, untyped):
// per shard the largest series, shards summed (averaged for a ratio), the
// first family present winning for its field. ok is false where the
// page's shards pass the parser's bound.
func reference(fams map[string]*dto.MetricFamily, engine string) (map[Field]float64, bool) {
	out := map[Field]float64{}
	for _, f := range families {
		mf := fams[f.name]
		if f.engine != engine || mf == nil || f.agg == info || f.field == progressOnly || f.where[0] != "" {
			continue
		}
		if _, done := out[f.field]; done {
			continue
		}
		if t := mf.GetType(); t != dto.MetricType_GAUGE && t != dto.MetricType_COUNTER && t != dto.MetricType_UNTYPED {
			return nil, false
		}
		perShard := map[string]float64{}
		for _, m := range mf.Metric {
			v := value(m)
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				continue
			}
			key := ""
			for _, l := range m.Label {
				if l.GetName() == shardLabel[f.engine] {
					key = l.GetValue()
				}
			}
			if old, ok := perShard[key]; !ok || v > old {
				perShard[key] = v
			}
		}
		if len(perShard) > maxShards {
			return nil, false
		}
		if len(perShard) == 0 {
			continue
		}
		var total float64
		for _, v := range perShard {
			total += v
		}
		if f.agg == mean {
			total /= float64(len(perShard))
		}
		out[f.field] = total
	}
	return out, true
}

// FuzzParseAgainstExpfmt: wherever expfmt reads a page whole (with the
// names engines use), the parser finds no malformed line and reads the
// table's figures as expfmt's reading gives them.
func FuzzParseAgainstExpfmt(f *testing.F) {
	for _, file := range []string{"llamacpp.txt", "tgi.txt"} { // small pages: the fuzzer mutates faster
		f.Add(enginetest.New(fixture(f, file)).Render())
	}
	f.Add([]byte("vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3.0\nvllm:num_requests_waiting{engine=\"1\",model_name=\"m\"} 4.0\n" +
		"vllm:kv_cache_usage_perc{engine=\"0\"} 0.5\nvllm:gpu_cache_usage_perc{engine=\"0\"} 0.25\n"))
	f.Add([]byte("sglang:num_running_reqs{dp_rank=\"0\",tp_rank=\"0\"} 2.0\nsglang:num_running_reqs{dp_rank=\"0\",tp_rank=\"1\"} 2.0\n"))
	f.Add([]byte("vllm:num_requests_waiting{a=\"\\\"}\"} 1e3\n"))
	f.Add([]byte("# TYPE tgi_queue_size gauge\ntgi_queue_size\t3 17\n  tgi_batch_current_size{x=\"y\",} +Inf\n"))
	p := NewParser()
	f.Fuzz(func(t *testing.T, page []byte) {
		ep := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := ep.TextToMetricFamilies(bytes.NewReader(page))
		var r Reading
		if perr := p.Parse(page, &r); err != nil || perr != nil {
			return
		}
		if r.Malformed != 0 {
			t.Fatalf("expfmt read the page whole, the parser found %d malformed lines", r.Malformed)
		}
		want, ok := reference(fams, r.Engine)
		if !ok {
			return
		}
		for field, v := range want {
			if got, has := r.Get(field); !has || got != v {
				t.Fatalf("field %d: %v (%v), expfmt's reading gives %v", field, got, has, v)
			}
		}
	})
}

func BenchmarkParseVLLMPage(b *testing.B) {
	e := enginetest.New(fixture(b, "vllm-0.10.txt"))
	e.Set("queue", 12)
	page := e.Render()
	b.Run("hive", func(b *testing.B) {
		p := NewParser()
		var r Reading
		b.SetBytes(int64(len(page)))
		b.ReportAllocs()
		for b.Loop() {
			if err := p.Parse(page, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("expfmt", func(b *testing.B) {
		b.SetBytes(int64(len(page)))
		b.ReportAllocs()
		for b.Loop() {
			p := expfmt.NewTextParser(model.LegacyValidation)
			if _, err := p.TextToMetricFamilies(bytes.NewReader(page)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
