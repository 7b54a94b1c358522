// Package engine reads an inference engine's own load from its
// Prometheus page (or llama.cpp's /slots): requests waiting and running,
// the KV cache, token counters, and whether it still makes progress. The
// names differ by engine and version; the table below is the only place
// that knows them, so a new engine or a renamed metric is one row.
package engine

// Field is one normalised figure of a worker's load.
type Field int

const (
	Queue        Field = iota // requests waiting
	Running                   // requests in the running batch
	KVUsedRatio               // share of the KV cache in use, 0 to 1
	KVUsedTokens              // tokens held in the KV cache
	KVCapacity                // tokens the KV cache holds
	PromptTokens              // counter: prompt (prefill) tokens processed
	GenTokens                 // counter: tokens generated
	Preemptions               // counter: requests preempted
	progressOnly              // counted towards progress only
	numFields
)

// agg says how a family's series add up: within one shard (a
// data-parallel engine's rank) the series of its other labels are one
// figure told several times (tensor-parallel ranks), so the largest is
// taken; shards are then added, or averaged for a ratio.
type agg uint8

const (
	sum  agg = iota // over shards
	mean            // over shards: a ratio
	// info is an info gauge (value 1) whose labels carry the figure: the
	// KV capacity from vLLM's cache_config_info, summed over shards.
	info
)

// family is one row: an engine's metric family and what it means. For a
// field several rows may exist (a metric renamed between versions): the
// first that the page has wins.
type family struct {
	engine string
	name   string // as exposed, with _total for counters
	field  Field
	agg    agg
	// where keeps only series whose label where[0] is where[1].
	where [2]string
	// progress: the family moves with every step of the engine, so a
	// worker with requests running whose progress does not move is
	// stalled. A counter updated only when a request finishes is not
	// progress (a long generation would look stalled).
	progress bool
}

// Engines, as the load block names them.
const (
	VLLM     = "vllm"
	SGLang   = "sglang"
	LlamaCPP = "llamacpp"
	TGI      = "tgi"
)

// shardLabel is the label that tells one engine's data-parallel ranks
// apart: their figures add up.
var shardLabel = map[string]string{VLLM: "engine", SGLang: "dp_rank"}

// families: names and label sets from the engines' own sources:
// vllm-project/vllm vllm/v1/metrics/loggers.py (labels model_name and
// engine, one per data-parallel engine; gpu_cache_usage_perc before 0.9,
// kv_cache_usage_perc from 0.9, both for a while), sgl-project/sglang
// python/sglang/srt/metrics/collector.py (labels model_name, engine_type,
// tp_rank, dp_rank; realtime_tokens_total{mode} updated each log interval
// in newer versions), ggml-org/llama.cpp tools/server/server.cpp
// (llamacpp:*, no labels, only with --metrics; kv_cache_usage_ratio and
// kv_cache_tokens in older builds), huggingface/text-generation-inference
// router (tgi_*).
var families = []family{
	{engine: VLLM, name: "vllm:num_requests_waiting", field: Queue},
	{engine: VLLM, name: "vllm:num_requests_running", field: Running},
	{engine: VLLM, name: "vllm:kv_cache_usage_perc", field: KVUsedRatio, agg: mean},
	{engine: VLLM, name: "vllm:gpu_cache_usage_perc", field: KVUsedRatio, agg: mean},
	{engine: VLLM, name: "vllm:cache_config_info", field: KVCapacity, agg: info},
	{engine: VLLM, name: "vllm:prompt_tokens_total", field: PromptTokens, progress: true},
	{engine: VLLM, name: "vllm:generation_tokens_total", field: GenTokens, progress: true},
	{engine: VLLM, name: "vllm:num_preemptions_total", field: Preemptions},

	{engine: SGLang, name: "sglang:num_queue_reqs", field: Queue},
	{engine: SGLang, name: "sglang:num_running_reqs", field: Running},
	{engine: SGLang, name: "sglang:token_usage", field: KVUsedRatio, agg: mean},
	{engine: SGLang, name: "sglang:num_used_tokens", field: KVUsedTokens},
	{engine: SGLang, name: "sglang:max_total_num_tokens", field: KVCapacity},
	{engine: SGLang, name: "sglang:prompt_tokens_total", field: PromptTokens},
	{engine: SGLang, name: "sglang:generation_tokens_total", field: GenTokens},
	{engine: SGLang, name: "sglang:realtime_tokens_total", field: progressOnly, where: [2]string{"mode", "decode"}, progress: true},
	{engine: SGLang, name: "sglang:realtime_tokens_total", field: progressOnly, where: [2]string{"mode", "prefill_compute"}, progress: true},

	{engine: LlamaCPP, name: "llamacpp:requests_deferred", field: Queue},
	{engine: LlamaCPP, name: "llamacpp:requests_processing", field: Running},
	{engine: LlamaCPP, name: "llamacpp:kv_cache_usage_ratio", field: KVUsedRatio, agg: mean},
	{engine: LlamaCPP, name: "llamacpp:kv_cache_tokens", field: KVUsedTokens},
	{engine: LlamaCPP, name: "llamacpp:prompt_tokens_total", field: PromptTokens},
	{engine: LlamaCPP, name: "llamacpp:tokens_predicted_total", field: GenTokens},
	{engine: LlamaCPP, name: "llamacpp:n_decode_total", field: progressOnly, progress: true},

	{engine: TGI, name: "tgi_queue_size", field: Queue},
	{engine: TGI, name: "tgi_batch_current_size", field: Running},
	{engine: TGI, name: "tgi_batch_current_max_tokens", field: KVUsedTokens},
}

// byName indexes the table by family name.
var byName = func() map[string][]int {
	m := map[string][]int{}
	for i, f := range families {
		m[f.name] = append(m[f.name], i)
	}
	return m
}()
