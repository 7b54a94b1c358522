/*
 * A stand-in for libnvidia-ml.so.1: the NVML calls the hive makes, served
 * from files, for tests on machines without a GPU (make nvml-fake).
 *
 * $FAKE_NVML_DIR/gpus holds one GPU a line:
 *   index uuid total_mib used_mib util_pct temp_c power_mw limit_mw cc_major cc_minor name...
 * $FAKE_NVML_DIR/procs one compute process a line:
 *   gpu pid used_mib sm_pct
 * Both are read again on every call, so a test may rewrite them.
 *
 * Optional, also read on every call:
 * $FAKE_NVML_DIR/reserved   gpu reserved_mib: the driver's reserved memory,
 *   which v1 memory info counts as used and v2 tells apart (used_mib in
 *   gpus is v2's used, as nvidia-smi prints it)
 * $FAKE_NVML_DIR/gpm        gpu sm_util sm_occupancy tensor dram_bw fp16 fp32:
 *   GPM (Hopper) figures; a GPU without a line has no GPM
 * $FAKE_NVML_DIR/samples    gpu pid offset_ms sm_util mem_util [read]: a
 *   buffer of per-process samples, replayed: a sample is stamped nvmlInit's
 *   time plus its offset, and nvmlDeviceGetProcessUtilization returns those
 *   stamped after lastSeen and not in the future, in the file's order (out
 *   of order where the file is), NOT_FOUND when none. With a sixth column a
 *   sample is there from that call of nvmlDeviceGetProcessUtilization on
 *   its GPU on (1 the first), whatever the clock: windows a test can know.
 *   Without this file every process of procs has one sample, now, of its
 *   sm_pct.
 * Built with -DFAKE_NVML_V1 the library lacks nvmlDeviceGetMemoryInfo_v2,
 * as an older driver does.
 *
 * $FAKE_NVML_CONTROL (default $FAKE_NVML_DIR/control) takes injections,
 * one a line, read as they are appended:
 *   xid <gpu> <code>        an XID event (delivered once, by nvmlEventSetWait)
 *   lost <gpu>              the GPU answers NVML_ERROR_GPU_IS_LOST
 *   ecc <gpu> <count>       volatile uncorrectable ECC errors
 *   temp <gpu> <celsius>
 *   throttle <gpu> <reason>[,<reason>]   clock-event reasons by their JSON names
 *   hang <ms>               the next device query blocks that long
 *   clear <gpu>             undo lost, ecc, temp and throttle
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int nvmlReturn_t;
enum {
	NVML_SUCCESS = 0,
	NVML_ERROR_INVALID_ARGUMENT = 2,
	NVML_ERROR_NOT_SUPPORTED = 3,
	NVML_ERROR_NOT_FOUND = 6,
	NVML_ERROR_INSUFFICIENT_SIZE = 7,
	NVML_ERROR_TIMEOUT = 10,
	NVML_ERROR_GPU_IS_LOST = 15,
	NVML_ERROR_UNKNOWN = 999,
};

#define MAX_GPUS 16
#define MAX_PROCS 256
#define MAX_XIDS 64

typedef struct nvmlDevice_st {
	int index;
} *nvmlDevice_t;

typedef struct nvmlEventSet_st {
	int unused;
} *nvmlEventSet_t;

typedef struct {
	unsigned int gpu, memory;
} nvmlUtilization_t;
typedef struct {
	unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
	unsigned int version;
	unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
typedef struct {
	unsigned int version, isSupportedDevice;
} nvmlGpmSupport_t;
typedef struct nvmlGpmSample_st {
	int gpu;
	int taken;
} *nvmlGpmSample_t;
typedef struct {
	unsigned int metricId;
	nvmlReturn_t nvmlReturn;
	double value;
	struct {
		char *shortName, *longName, *unit;
	} metricInfo;
} nvmlGpmMetric_t;
typedef struct {
	unsigned int version, numMetrics;
	nvmlGpmSample_t sample1, sample2;
	nvmlGpmMetric_t metrics[1]; /* numMetrics of them */
} nvmlGpmMetricsGet_t;
typedef struct {
	unsigned int pid;
	unsigned long long usedGpuMemory;
	unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
typedef struct {
	unsigned int pid;
	unsigned long long timeStamp;
	unsigned int smUtil, memUtil, encUtil, decUtil;
} nvmlProcessUtilizationSample_t;
typedef struct {
	nvmlDevice_t device;
	unsigned long long eventType, eventData;
	unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;

struct gpu {
	char uuid[96], name[96];
	unsigned long long total, used;
	unsigned int util, temp, power, limit;
	int ccMajor, ccMinor;
	unsigned long long reserved;
	int gpm;           /* has GPM figures */
	double gpmVals[6]; /* sm, occupancy, tensor, dram, fp16, fp32 */
	/* injections */
	int lost, tempSet;
	unsigned int tempInj;
	unsigned long long ecc, throttle;
	unsigned long long replays, nvlink; /* PCIe replays, NVLink replay errors */
};

struct proc {
	int gpu;
	unsigned int pid, sm;
	unsigned long long used;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct nvmlDevice_st handles[MAX_GPUS];
static struct nvmlEventSet_st theSet;
static struct gpu gpus[MAX_GPUS];
static int ngpus;
static struct proc procs[MAX_PROCS];
static int nprocs;
#define MAX_SAMPLES 4096
static struct sample {
	int gpu;
	unsigned int pid, sm, mem;
	unsigned long long offsetMs;
	int fromRead; /* 0: by the clock */
} samples[MAX_SAMPLES];
static int utilReads[MAX_GPUS]; /* nvmlDeviceGetProcessUtilization calls per GPU */
static int nsamples, haveSamples;
static unsigned long long initUs;
static long controlOffset;
static int hangMs;
static struct {
	int gpu;
	unsigned long long code;
} xids[MAX_XIDS];
static int nxids;

static const char *dir(void) {
	const char *d = getenv("FAKE_NVML_DIR");
	return d ? d : ".";
}

static const struct {
	const char *name;
	unsigned long long bit;
} reasons[] = {
	{"gpu_idle", 0x1}, {"applications_clocks_setting", 0x2}, {"sw_power_cap", 0x4}, {"hw_slowdown", 0x8},
	{"sync_boost", 0x10}, {"sw_thermal_slowdown", 0x20}, {"hw_thermal_slowdown", 0x40},
	{"hw_power_brake_slowdown", 0x80}, {"display_clock_setting", 0x100},
};

static unsigned long long reasonMask(char *list) {
	unsigned long long m = 0;
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
			if (strcmp(tok, reasons[i].name) == 0) m |= reasons[i].bit;
	}
	return m;
}

/* loadGPUs reads the gpus and procs files, keeping the injections. */
static void loadGPUs(void) {
	char path[4096], line[1024];
	snprintf(path, sizeof path, "%s/gpus", dir());
	FILE *f = fopen(path, "r");
	int n = 0;
	if (f) {
		while (n < MAX_GPUS && fgets(line, sizeof line, f)) {
			struct gpu g = gpus[n];
			int idx, off = 0;
			if (sscanf(line, "%d %95s %llu %llu %u %u %u %u %d %d %n", &idx, g.uuid, &g.total, &g.used, &g.util, &g.temp,
			           &g.power, &g.limit, &g.ccMajor, &g.ccMinor, &off) < 10)
				continue;
			snprintf(g.name, sizeof g.name, "%s", line + off);
			g.name[strcspn(g.name, "\n")] = 0;
			gpus[n++] = g;
		}
		fclose(f);
	}
	ngpus = n;
	snprintf(path, sizeof path, "%s/procs", dir());
	f = fopen(path, "r");
	n = 0;
	if (f) {
		while (n < MAX_PROCS && fgets(line, sizeof line, f)) {
			struct proc p;
			if (sscanf(line, "%d %u %llu %u", &p.gpu, &p.pid, &p.used, &p.sm) == 4) procs[n++] = p;
		}
		fclose(f);
	}
	nprocs = n;
	for (int i = 0; i < MAX_GPUS; i++) gpus[i].reserved = 0, gpus[i].gpm = 0;
	snprintf(path, sizeof path, "%s/reserved", dir());
	if ((f = fopen(path, "r"))) {
		int g;
		unsigned long long r;
		while (fgets(line, sizeof line, f))
			if (sscanf(line, "%d %llu", &g, &r) == 2 && g >= 0 && g < MAX_GPUS) gpus[g].reserved = r;
		fclose(f);
	}
	snprintf(path, sizeof path, "%s/gpm", dir());
	if ((f = fopen(path, "r"))) {
		int g;
		double v[6];
		while (fgets(line, sizeof line, f))
			if (sscanf(line, "%d %lf %lf %lf %lf %lf %lf", &g, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) == 7 && g >= 0 &&
			    g < MAX_GPUS) {
				gpus[g].gpm = 1;
				memcpy(gpus[g].gpmVals, v, sizeof v);
			}
		fclose(f);
	}
	snprintf(path, sizeof path, "%s/samples", dir());
	nsamples = haveSamples = 0;
	if ((f = fopen(path, "r"))) {
		haveSamples = 1;
		while (nsamples < MAX_SAMPLES && fgets(line, sizeof line, f)) {
			struct sample *sp = &samples[nsamples];
			sp->fromRead = 0;
			if (sscanf(line, "%d %u %llu %u %u %d", &sp->gpu, &sp->pid, &sp->offsetMs, &sp->sm, &sp->mem, &sp->fromRead) >= 5)
				nsamples++;
		}
		fclose(f);
	}
}

static unsigned long long nowUs(void) {
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (unsigned long long)tv.tv_sec * 1000000ULL + (unsigned long long)tv.tv_usec;
}

/* poll applies the control lines appended since the last poll. */
static void poll(void) {
	char path[4096], line[512];
	const char *c = getenv("FAKE_NVML_CONTROL");
	if (c)
		snprintf(path, sizeof path, "%s", c);
	else
		snprintf(path, sizeof path, "%s/control", dir());
	FILE *f = fopen(path, "r");
	if (!f) return;
	if (fseek(f, controlOffset, SEEK_SET) != 0) {
		fclose(f);
		return;
	}
	while (fgets(line, sizeof line, f)) {
		if (!strchr(line, '\n')) break; /* half a line: read it whole next time */
		controlOffset = ftell(f);
		char cmd[32], arg[256] = "";
		int g = -1;
		unsigned long long v = 0;
		if (sscanf(line, "%31s", cmd) != 1) continue;
		if (strcmp(cmd, "hang") == 0 && sscanf(line, "%*s %llu", &v) == 1) {
			hangMs = (int)v;
			continue;
		}
		if (sscanf(line, "%*s %d %255s", &g, arg) < 1 || g < 0 || g >= MAX_GPUS) continue;
		v = strtoull(arg, NULL, 10);
		if (strcmp(cmd, "xid") == 0 && nxids < MAX_XIDS) {
			xids[nxids].gpu = g;
			xids[nxids++].code = v;
		} else if (strcmp(cmd, "lost") == 0) {
			gpus[g].lost = 1;
		} else if (strcmp(cmd, "ecc") == 0) {
			gpus[g].ecc = v;
		} else if (strcmp(cmd, "temp") == 0) {
			gpus[g].tempSet = 1;
			gpus[g].tempInj = (unsigned int)v;
		} else if (strcmp(cmd, "replay") == 0) {
			gpus[g].replays = v;
		} else if (strcmp(cmd, "nvlink") == 0) {
			gpus[g].nvlink = v;
		} else if (strcmp(cmd, "throttle") == 0) {
			gpus[g].throttle = reasonMask(arg);
		} else if (strcmp(cmd, "clear") == 0) {
			gpus[g].lost = gpus[g].tempSet = 0;
			gpus[g].ecc = gpus[g].throttle = 0;
		}
	}
	fclose(f);
}

/* enter starts every device query: files and control read again, a
 * pending hang served (outside the lock, as a wedged driver would). */
static struct gpu *enter(nvmlDevice_t d, nvmlReturn_t *ret) {
	pthread_mutex_lock(&mu);
	poll();
	loadGPUs();
	int hang = hangMs;
	hangMs = 0;
	pthread_mutex_unlock(&mu);
	if (hang > 0) usleep((useconds_t)hang * 1000);
	if (!d || d->index < 0 || d->index >= ngpus) {
		*ret = NVML_ERROR_INVALID_ARGUMENT;
		return NULL;
	}
	struct gpu *g = &gpus[d->index];
	*ret = g->lost ? NVML_ERROR_GPU_IS_LOST : NVML_SUCCESS;
	return g;
}

#define DEVICE_QUERY(d)                      \
	nvmlReturn_t ret;                        \
	struct gpu *g = enter(d, &ret);          \
	if (ret != NVML_SUCCESS) return ret;

nvmlReturn_t nvmlInit_v2(void) {
	pthread_mutex_lock(&mu);
	for (int i = 0; i < MAX_GPUS; i++) handles[i].index = i;
	initUs = nowUs();
	poll();
	loadGPUs();
	pthread_mutex_unlock(&mu);
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlInit(void) { return nvmlInit_v2(); }
nvmlReturn_t nvmlShutdown(void) { return NVML_SUCCESS; }

const char *nvmlErrorString(nvmlReturn_t r) {
	switch (r) {
	case NVML_SUCCESS: return "Success";
	case NVML_ERROR_NOT_FOUND: return "Not Found";
	case NVML_ERROR_TIMEOUT: return "Timeout";
	case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
	case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
	}
	return "Unknown Error";
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *v, unsigned int n) {
	snprintf(v, n, "580.159.04");
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
	*v = 13000;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) { return nvmlSystemGetCudaDriverVersion(v); }

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n) {
	pthread_mutex_lock(&mu);
	loadGPUs();
	*n = (unsigned int)ngpus;
	pthread_mutex_unlock(&mu);
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCount(unsigned int *n) { return nvmlDeviceGetCount_v2(n); }

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) {
	if (i >= MAX_GPUS) return NVML_ERROR_INVALID_ARGUMENT;
	*d = &handles[i];
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int i, nvmlDevice_t *d) { return nvmlDeviceGetHandleByIndex_v2(i, d); }

/* The fixed description answers even for a lost GPU, as NVML's cache does. */
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int n) {
	nvmlReturn_t ret;
	struct gpu *g = enter(d, &ret);
	if (!g) return ret;
	snprintf(uuid, n, "%s", g->uuid);
	return NVML_SUCCESS;
}
/* nvmlPciInfo_t as nvml.h lays it out; the fake's GPU i sits on bus 5+i. */
struct pciInfo {
	char busIdLegacy[16];
	unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
	char busId[32];
};
nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t d, struct pciInfo *p) {
	DEVICE_QUERY(d);
	(void)g;
	int i = d->index;
	memset(p, 0, sizeof *p);
	p->bus = 5 + i;
	snprintf(p->busId, sizeof p->busId, "00000000:%02X:00.0", 5 + i);
	snprintf(p->busIdLegacy, sizeof p->busIdLegacy, "0000:%02X:00.0", 5 + i);
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int n) {
	nvmlReturn_t ret;
	struct gpu *g = enter(d, &ret);
	if (!g) return ret;
	snprintf(name, n, "%s", g->name);
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int *major, int *minor) {
	DEVICE_QUERY(d);
	*major = g->ccMajor;
	*minor = g->ccMinor;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
	DEVICE_QUERY(d);
	m->total = g->total << 20;
	m->used = (g->used + g->reserved) << 20; /* v1 counts the reserved as used */
	m->free = m->total - m->used;
	return NVML_SUCCESS;
}
#ifndef FAKE_NVML_V1 /* the hive looks the symbol up first, as with an older driver */
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
	DEVICE_QUERY(d);
	m->total = g->total << 20;
	m->reserved = g->reserved << 20;
	m->used = g->used << 20;
	m->free = m->total - m->used - m->reserved;
	return NVML_SUCCESS;
}
#endif
nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t d, nvmlUtilization_t *u) {
	DEVICE_QUERY(d);
	u->gpu = g->util;
	u->memory = 0;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *t) {
	(void)sensor;
	DEVICE_QUERY(d);
	*t = g->tempSet ? g->tempInj : g->temp;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw) {
	DEVICE_QUERY(d);
	*mw = g->power;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t d, unsigned int *mw) {
	DEVICE_QUERY(d);
	*mw = g->limit;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *mask) {
	DEVICE_QUERY(d);
	*mask = g->throttle;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int errorType, int counterType, unsigned long long *n) {
	(void)errorType;
	(void)counterType;
	DEVICE_QUERY(d);
	*n = g->ecc;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetPcieReplayCounter(nvmlDevice_t d, unsigned int *n) {
	DEVICE_QUERY(d);
	*n = (unsigned int)g->replays;
	return NVML_SUCCESS;
}
/* One NVLink, up, on every GPU: its replay errors are the "nvlink"
 * injection, its recovery errors 0. */
nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t d, unsigned int link, int *active) {
	DEVICE_QUERY(d);
	(void)g;
	if (link > 0) return NVML_ERROR_INVALID_ARGUMENT;
	*active = 1;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetNvLinkErrorCounter(nvmlDevice_t d, unsigned int link, int counter, unsigned long long *n) {
	DEVICE_QUERY(d);
	if (link > 0) return NVML_ERROR_INVALID_ARGUMENT;
	*n = counter == 0 ? g->nvlink : 0;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t d, unsigned int *corr, unsigned int *unc, unsigned int *pending,
                                       unsigned int *failed) {
	DEVICE_QUERY(d);
	(void)g;
	*corr = *unc = *pending = *failed = 0;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *count, nvmlProcessInfo_t *out) {
	DEVICE_QUERY(d);
	(void)g;
	unsigned int n = 0;
	for (int i = 0; i < nprocs; i++) {
		if (procs[i].gpu != d->index) continue;
		if (n < *count) {
			out[n].pid = procs[i].pid;
			out[n].usedGpuMemory = procs[i].used << 20;
			out[n].gpuInstanceId = out[n].computeInstanceId = 0xFFFFFFFF;
		}
		n++;
	}
	unsigned int room = *count;
	*count = n;
	return n > room ? NVML_ERROR_INSUFFICIENT_SIZE : NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t d, nvmlProcessUtilizationSample_t *out, unsigned int *count,
                                             unsigned long long lastSeen) {
	DEVICE_QUERY(d);
	(void)g;
	unsigned long long now = nowUs();
	unsigned int n = 0;
	if (haveSamples) {
		int call = 0;
		pthread_mutex_lock(&mu);
		/* go-nvml asks for the size first (out NULL), then for the
		 * samples: the sizing call starts a read. */
		if (!out) call = ++utilReads[d->index];
		else call = utilReads[d->index];
		pthread_mutex_unlock(&mu);
		for (int i = 0; i < nsamples; i++) {
			unsigned long long ts = initUs + samples[i].offsetMs * 1000ULL;
			if (samples[i].gpu != d->index || ts <= lastSeen) continue;
			if (samples[i].fromRead ? samples[i].fromRead > call : ts > now) continue;
			if (out && n < *count) {
				out[n].pid = samples[i].pid;
				out[n].timeStamp = ts;
				out[n].smUtil = samples[i].sm;
				out[n].memUtil = samples[i].mem;
				out[n].encUtil = out[n].decUtil = 0;
			}
			n++;
		}
	} else {
		for (int i = 0; i < nprocs; i++) {
			if (procs[i].gpu != d->index) continue;
			if (out && n < *count) {
				out[n].pid = procs[i].pid;
				out[n].timeStamp = now;
				out[n].smUtil = procs[i].sm;
				out[n].memUtil = out[n].encUtil = out[n].decUtil = 0;
			}
			n++;
		}
	}
	if (n == 0) return NVML_ERROR_NOT_FOUND;
	if (!out || n > *count) {
		*count = n;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	*count = n;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
	*set = &theSet;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
	(void)set;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types, nvmlEventSet_t set) {
	(void)d;
	(void)types;
	(void)set;
	return NVML_SUCCESS;
}

/* nvmlEventSetWait_v2 delivers queued XIDs; it never serves a hang. */
nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
	(void)set;
	for (unsigned int waited = 0;; waited += 20) {
		pthread_mutex_lock(&mu);
		poll();
		if (nxids > 0) {
			data->device = &handles[xids[0].gpu];
			data->eventType = 8; /* nvmlEventTypeXidCriticalError */
			data->eventData = xids[0].code;
			data->gpuInstanceId = data->computeInstanceId = 0xFFFFFFFF;
			memmove(&xids[0], &xids[1], sizeof xids[0] * (size_t)(nxids - 1));
			nxids--;
			pthread_mutex_unlock(&mu);
			return NVML_SUCCESS;
		}
		pthread_mutex_unlock(&mu);
		if (waited >= timeoutms) return NVML_ERROR_TIMEOUT;
		usleep(20 * 1000);
	}
}
nvmlReturn_t nvmlEventSetWait(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
	return nvmlEventSetWait_v2(set, data, timeoutms);
}

/* GPM: a sample remembers its GPU; two of the same GPU, the second taken
 * after the first, give the gpm file's figures. */
static struct nvmlGpmSample_st gpmSamples[64];
static int ngpmSamples;

nvmlReturn_t nvmlGpmQueryDeviceSupport(nvmlDevice_t d, nvmlGpmSupport_t *sup) {
	DEVICE_QUERY(d);
	sup->isSupportedDevice = (unsigned int)g->gpm;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlGpmSampleAlloc(nvmlGpmSample_t *s) {
	pthread_mutex_lock(&mu);
	if (ngpmSamples >= 64) {
		pthread_mutex_unlock(&mu);
		return NVML_ERROR_UNKNOWN;
	}
	*s = &gpmSamples[ngpmSamples++];
	(*s)->gpu = -1;
	(*s)->taken = 0;
	pthread_mutex_unlock(&mu);
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlGpmSampleFree(nvmlGpmSample_t s) {
	(void)s;
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlGpmSampleGet(nvmlDevice_t d, nvmlGpmSample_t s) {
	static int clock;
	DEVICE_QUERY(d);
	if (!g->gpm) return NVML_ERROR_NOT_SUPPORTED;
	pthread_mutex_lock(&mu);
	s->gpu = d->index;
	s->taken = ++clock;
	pthread_mutex_unlock(&mu);
	return NVML_SUCCESS;
}
nvmlReturn_t nvmlGpmMetricsGet(nvmlGpmMetricsGet_t *m) {
	pthread_mutex_lock(&mu);
	loadGPUs();
	nvmlGpmSample_t a = m->sample1, b = m->sample2;
	if (!a || !b || a->gpu < 0 || a->gpu != b->gpu || b->taken <= a->taken || !gpus[a->gpu].gpm) {
		pthread_mutex_unlock(&mu);
		return NVML_ERROR_INVALID_ARGUMENT;
	}
	static const unsigned int ids[6] = {2, 3, 5, 10, 13, 12}; /* SM, occupancy, tensor, DRAM BW, FP16, FP32 */
	for (unsigned int i = 0; i < m->numMetrics; i++) {
		m->metrics[i].nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
		for (int k = 0; k < 6; k++)
			if (m->metrics[i].metricId == ids[k]) {
				m->metrics[i].value = gpus[a->gpu].gpmVals[k];
				m->metrics[i].nvmlReturn = NVML_SUCCESS;
			}
	}
	pthread_mutex_unlock(&mu);
	return NVML_SUCCESS;
}
