//go:build ignore

// gen writes the fixture pages of internal/engine/testdata: each engine's
// /metrics page as its own code prints it (families, order, HELP and
// TYPE lines, label sets, histogram buckets), taken from the engines'
// sources (see README.md), with ${name} where the fake engines of the
// tests put a figure. Run: go run internal/engine/testdata/gen.go
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func main() {
	dir := filepath.Join("internal", "engine", "testdata")
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			panic(err)
		}
	}
	write("vllm-0.8.txt", vllm(1, false, "meta-llama/Llama-3.1-8B-Instruct"))
	write("vllm-0.10.txt", vllm(1, true, "meta-llama/Llama-3.1-8B-Instruct"))
	write("vllm-0.10-dp2.txt", vllm(2, true, "Qwen/Qwen2.5-72B-Instruct"))
	write("sglang.txt", sglang())
	write("llamacpp.txt", llamacpp())
	write("tgi.txt", tgi())
}

// python is what prometheus_client prints for the process it runs in.
func python() string {
	var b strings.Builder
	b.WriteString("# HELP python_gc_objects_collected_total Objects collected during gc\n# TYPE python_gc_objects_collected_total counter\n")
	for g, v := range []string{"12517.0", "4302.0", "1131.0"} {
		fmt.Fprintf(&b, "python_gc_objects_collected_total{generation=\"%d\"} %s\n", g, v)
	}
	b.WriteString("# HELP python_gc_objects_uncollectable_total Uncollectable objects found during GC\n# TYPE python_gc_objects_uncollectable_total counter\n")
	for g := range 3 {
		fmt.Fprintf(&b, "python_gc_objects_uncollectable_total{generation=\"%d\"} 0.0\n", g)
	}
	b.WriteString("# HELP python_gc_collections_total Number of times this generation was collected\n# TYPE python_gc_collections_total counter\n")
	for g, v := range []string{"2841.0", "258.0", "17.0"} {
		fmt.Fprintf(&b, "python_gc_collections_total{generation=\"%d\"} %s\n", g, v)
	}
	b.WriteString(`# HELP python_info Python platform information
# TYPE python_info gauge
python_info{implementation="CPython",major="3",minor="12",patchlevel="11",version="3.12.11"} 1.0
# HELP process_virtual_memory_bytes Virtual memory size in bytes.
# TYPE process_virtual_memory_bytes gauge
process_virtual_memory_bytes 5.4718971904e+010
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.315231232e+09
# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.79637912155e+09
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 412.53
# HELP process_open_fds Number of open file descriptors.
# TYPE process_open_fds gauge
process_open_fds 126.0
# HELP process_max_fds Maximum number of open file descriptors.
# TYPE process_max_fds gauge
process_max_fds 1.048576e+06
`)
	return b.String()
}

// buckets125 is vLLM's build_1_2_5_buckets(max_model_len).
func buckets125(max int) []float64 {
	var out []float64
	for e := 1; ; e *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*e > max {
				return out
			}
			out = append(out, float64(m*e))
		}
	}
}

func pyf(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

type fam struct {
	name, help, typ string
	buckets         []float64
	extra           string // more labels, with a leading comma
	value           string // a ${name} or a number; per engine ${name.N}
}

// vllm is a V1 engine's page (vllm/v1/metrics/loggers.py): labels
// model_name and engine, one series per data-parallel engine; renamed
// metrics printed under both names from 0.9 (newNames), the old ones only
// before.
func vllm(engines int, newNames bool, model string) string {
	lat := []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}
	tok := buckets125(131072)
	fams := []fam{
		{"vllm:num_requests_running", "Number of requests in model execution batches.", "gauge", nil, "", "${running}"},
		{"vllm:num_requests_waiting", "Number of requests waiting to be processed.", "gauge", nil, "", "${queue}"},
		{"vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.", "gauge", nil, "", "${kv}"},
		{"vllm:gpu_prefix_cache_queries", "GPU prefix cache queries, in terms of number of queried tokens.", "counter", nil, "", "${prompt}"},
		{"vllm:gpu_prefix_cache_hits", "GPU prefix cache hits, in terms of number of cached tokens.", "counter", nil, "", "0.0"},
	}
	if newNames {
		fams = append(fams,
			fam{"vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", "gauge", nil, "", "${kv}"},
			fam{"vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", "counter", nil, "", "${prompt}"},
			fam{"vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", "counter", nil, "", "0.0"})
	}
	fams = append(fams,
		fam{"vllm:num_preemptions", "Cumulative number of preemption from the engine.", "counter", nil, "", "${preempt}"},
		fam{"vllm:prompt_tokens", "Number of prefill tokens processed.", "counter", nil, "", "${prompt}"},
		fam{"vllm:generation_tokens", "Number of generation tokens processed.", "counter", nil, "", "${gen}"},
		fam{"vllm:request_success", "Count of successfully processed requests.", "counter", nil, `,finished_reason="stop"`, "${done}"},
		fam{"vllm:request_success", "Count of successfully processed requests.", "counter", nil, `,finished_reason="length"`, "0.0"},
		fam{"vllm:request_success", "Count of successfully processed requests.", "counter", nil, `,finished_reason="abort"`, "0.0"},
		fam{"vllm:request_prompt_tokens", "Number of prefill tokens processed.", "histogram", tok, "", ""},
		fam{"vllm:request_generation_tokens", "Number of generation tokens processed.", "histogram", tok, "", ""},
		fam{"vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", "histogram", []float64{1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384}, "", ""},
		fam{"vllm:request_max_num_generation_tokens", "Histogram of maximum number of requested generation tokens.", "histogram", tok, "", ""},
		fam{"vllm:request_params_n", "Histogram of the n request parameter.", "histogram", []float64{1, 2, 5, 10, 20}, "", ""},
		fam{"vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", "histogram", tok, "", ""},
		fam{"vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", "histogram", []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}, "", ""},
		fam{"vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", "histogram", []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0}, "", ""},
		fam{"vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", "histogram", lat, "", ""},
		fam{"vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", "histogram", lat, "", ""},
		fam{"vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", "histogram", lat, "", ""},
		fam{"vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", "histogram", lat, "", ""},
		fam{"vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", "histogram", lat, "", ""},
	)
	var b strings.Builder
	b.WriteString(python())
	for i, f := range fams {
		name := f.name
		if f.typ == "counter" {
			name += "_total"
		}
		first := i == 0 || fams[i-1].name != f.name
		last := i == len(fams)-1 || fams[i+1].name != f.name
		if first {
			fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, f.help, name, f.typ)
		}
		for e := range engines {
			labels := fmt.Sprintf(`engine="%d",model_name="%s"%s`, e, model, f.extra)
			val := strings.ReplaceAll(f.value, "}", "."+strconv.Itoa(e)+"}")
			switch f.typ {
			case "gauge", "counter":
				fmt.Fprintf(&b, "%s{%s} %s\n", name, labels, val)
			case "histogram":
				const n = 412
				for i, le := range f.buckets {
					fmt.Fprintf(&b, "%s_bucket{%s,le=\"%s\"} %s\n", f.name, labels, pyf(le), pyf(float64(n*(i+1)/len(f.buckets))))
				}
				fmt.Fprintf(&b, "%s_bucket{%s,le=\"+Inf\"} %s\n%s_count{%s} %s\n%s_sum{%s} 10331.542\n", f.name, labels, pyf(n), f.name, labels, pyf(n), f.name, labels)
			}
		}
		// prometheus_client's 0.0.4 text gives each counter and histogram
		// a _created gauge family after it.
		if last && f.typ != "gauge" {
			fmt.Fprintf(&b, "# HELP %s_created %s\n# TYPE %s_created gauge\n", f.name, f.help, f.name)
			for j := i; j >= 0 && fams[j].name == f.name; j-- {
				for e := range engines {
					fmt.Fprintf(&b, "%s_created{engine=\"%d\",model_name=\"%s\"%s} 1.7963791845e+09\n", f.name, e, model, fams[j].extra)
				}
			}
		}
	}
	b.WriteString("# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n# TYPE vllm:cache_config_info gauge\n")
	for e := range engines {
		extra := ""
		if newNames {
			extra = `,kv_cache_size_tokens="${kvcap.` + strconv.Itoa(e) + `}"`
		}
		fmt.Fprintf(&b, "vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\",calculate_kv_scales=\"False\",cpu_offload_gb=\"0\",enable_prefix_caching=\"True\",engine=\"%d\",gpu_memory_utilization=\"0.9\",is_attention_free=\"False\",num_cpu_blocks=\"None\",num_gpu_blocks=\"${blocks.%d}\",num_gpu_blocks_override=\"None\",prefix_caching_hash_algo=\"builtin\",sliding_window=\"None\",swap_space=\"4\",swap_space_bytes=\"4294967296\"%s} 1.0\n", e, e, extra)
	}
	return b.String()
}

// sglang is SGLang's page (python/sglang/srt/metrics/collector.py): the
// scheduler's gauges per tensor-parallel rank, the tokenizer's counters.
func sglang() string {
	var b strings.Builder
	b.WriteString(python())
	base := `engine_type="unified",model_name="meta-llama/Llama-3.1-8B-Instruct"`
	gauge := func(name, help, val string) {
		fmt.Fprintf(&b, "# HELP sglang:%s %s\n# TYPE sglang:%s gauge\n", name, help, name)
		for tp := range 2 {
			fmt.Fprintf(&b, "sglang:%s{dp_rank=\"0\",%s,pp_rank=\"0\",tp_rank=\"%d\"} %s\n", name, base, tp, val)
		}
	}
	gauge("num_running_reqs", "The number of running requests.", "${running}")
	gauge("num_used_tokens", "The number of used tokens.", "${kvused}")
	gauge("token_usage", "The token usage.", "${kv}")
	gauge("gen_throughput", "The generation throughput (token/s).", "${gentps}")
	gauge("num_queue_reqs", "The number of requests in the waiting queue.", "${queue}")
	gauge("num_grammar_queue_reqs", "The number of requests in the grammar waiting queue.", "0.0")
	gauge("cache_hit_rate", "The prefix cache hit rate.", "0.0")
	gauge("max_total_num_tokens", "Maximum total number of tokens in the KV cache pool.", "${kvcap}")
	b.WriteString("# HELP sglang:realtime_tokens_total Total number of tokens processed, updated on each log interval.\n# TYPE sglang:realtime_tokens_total counter\n")
	for _, mode := range []string{"decode", "prefill_cache", "prefill_compute"} {
		for tp := range 2 {
			fmt.Fprintf(&b, "sglang:realtime_tokens_total{dp_rank=\"0\",%s,mode=\"%s\",pp_rank=\"0\",tp_rank=\"%d\"} ${rt_%s}\n", base, mode, tp, mode)
		}
	}
	for _, c := range [][3]string{{"prompt_tokens", "Number of prefill tokens processed.", "${prompt}"},
		{"generation_tokens", "Number of generation tokens processed.", "${gen}"},
		{"num_requests", "Number of requests processed.", "${done}"}} {
		fmt.Fprintf(&b, "# HELP sglang:%s_total %s\n# TYPE sglang:%s_total counter\nsglang:%s_total{%s} %s\n", c[0], c[1], c[0], c[0], base, c[2])
		fmt.Fprintf(&b, "sglang:%s_created{%s} 1.79637915e+09\n", c[0], base)
	}
	b.WriteString("# HELP sglang:time_to_first_token_seconds Histogram of time to first token in seconds.\n# TYPE sglang:time_to_first_token_seconds histogram\n")
	for _, le := range []string{"0.1", "0.2", "0.4", "0.6", "0.8", "1.0", "2.0", "4.0", "6.0", "8.0", "10.0", "20.0", "40.0", "60.0", "80.0", "100.0", "200.0", "400.0", "+Inf"} {
		fmt.Fprintf(&b, "sglang:time_to_first_token_seconds_bucket{%s,le=\"%s\"} 97.0\n", base, le)
	}
	fmt.Fprintf(&b, "sglang:time_to_first_token_seconds_count{%s} 97.0\nsglang:time_to_first_token_seconds_sum{%s} 21.73\n", base, base)
	return b.String()
}

// llamacpp is llama.cpp's server with --metrics (tools/server/server.cpp):
// no labels, HELP, TYPE and the value per item.
func llamacpp() string {
	var b strings.Builder
	item := func(typ, name, help, val string) {
		fmt.Fprintf(&b, "# HELP llamacpp:%s %s\n# TYPE llamacpp:%s %s\nllamacpp:%s %s\n", name, help, name, typ, name, val)
	}
	item("counter", "prompt_tokens_total", "Number of prompt tokens processed.", "${prompt}")
	item("counter", "prompt_seconds_total", "Prompt process time", "41.872")
	item("counter", "tokens_predicted_total", "Number of generation tokens processed.", "${gen}")
	item("counter", "tokens_predicted_seconds_total", "Predict process time", "1297.49")
	item("counter", "n_decode_total", "Total number of llama_decode() calls", "${decode}")
	item("counter", "n_tokens_max", "Largest observed n_tokens.", "8192")
	item("gauge", "prompt_tokens_seconds", "Average prompt throughput in tokens/s.", "1812.7")
	item("gauge", "predicted_tokens_seconds", "Average generation throughput in tokens/s.", "${gentps}")
	item("gauge", "requests_processing", "Number of requests processing.", "${running}")
	item("gauge", "requests_deferred", "Number of requests deferred.", "${queue}")
	item("gauge", "n_busy_slots_per_decode", "Average number of busy slots per llama_decode() call", "1.87")
	return b.String()
}

// tgi is text-generation-inference's router (metrics-exporter-prometheus).
func tgi() string {
	return `# TYPE tgi_request_count counter
tgi_request_count 1831
# TYPE tgi_request_success counter
tgi_request_success 1830
# TYPE tgi_queue_size gauge
tgi_queue_size ${queue}
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size ${running}
# TYPE tgi_batch_current_max_tokens gauge
tgi_batch_current_max_tokens ${kvused}
# TYPE tgi_batch_next_size histogram
tgi_batch_next_size_bucket{le="1"} 921
tgi_batch_next_size_bucket{le="8"} 1504
tgi_batch_next_size_bucket{le="+Inf"} 1831
tgi_batch_next_size_sum 7023
tgi_batch_next_size_count 1831
# TYPE tgi_request_generated_tokens histogram
tgi_request_generated_tokens_bucket{le="1"} 3
tgi_request_generated_tokens_bucket{le="10"} 112
tgi_request_generated_tokens_bucket{le="100"} 1211
tgi_request_generated_tokens_bucket{le="+Inf"} 1830
tgi_request_generated_tokens_sum 203512
tgi_request_generated_tokens_count 1830
`
}
