"""Bounds on inputs and on work: one definition of every limit muxsim enforces.

Inputs are untrusted, so every number a user can give has a physically meaningful
range, and work whose size follows from the input (requests to simulate, utilization
samples, mesh groups to search) is estimated before it starts and refused above a
limit. The limits a user may need to raise have a command-line flag (named below);
the others are ranges no real deployment reaches.
"""

from __future__ import annotations

# ---- work (raise with a flag) ------------------------------------------------------------
MAX_REQUESTS = 1_000_000  # requests one run generates or replays (--max-requests; about 1.2 KB each in a run)
MAX_SEARCH = 100_000  # LLMs x meshes a placement group search may fill without a --time-limit
MAX_CAPACITY_GPUS = 4096  # GPUs a capacity search may consider (capacity --max-gpus)
MAX_CAPACITY_REQUESTS = 50_000_000  # requests a capacity search simulates in all (lower --max-gpus or the duration)

# ---- sizes of things ---------------------------------------------------------------------
MAX_LLMS = 1024  # LLMs in one workload (and COUNT in `synth --mix`)
MAX_NODES = 1024  # nodes of a cluster
MAX_GPUS_PER_NODE = 128  # GPUs in one node (an NVLink domain)
MAX_TOKENS = 1 << 20  # tokens of one prompt or answer, and of a context window
MAX_BATCH = 1 << 16  # sequences in one batch (a plan's max_batch, `cost --batch`)
MAX_RATE = 1e6  # requests per second of one LLM
MAX_TIME_S = 1e9  # seconds: workload durations, arrival times, finite drains (~32 years)
MAX_SLO_SCALE = 1e6  # an SLO scale, in multiples of a request's latency alone
MAX_SEED = 2**63 - 1
MAX_TIME_LIMIT_S = 1e6  # a search's --time-limit
MAX_SCORE_BUDGET = 64  # candidate plans flex-slo simulates (--budget)
MIN_SM_SHARE = 0.01  # the smallest share of a GPU's SMs a job may run at (1%)
MAX_MESSAGE_BYTES = 1 << 40  # bytes of one collective's payload (a Vidur all-reduce row; larger rows are dropped)
MAX_PARAM = 1e9  # any cost-model parameter (efficiencies, fixed times, tile sizes, bus bandwidths)
MAX_STEP_MS = 1e9  # a measured step latency, in milliseconds (profiles, co-location runs)
MAX_LENGTH_CV = 1e3  # coefficient of variation of a lognormal length
MIN_LENGTH_CV = 1e-3
MAX_ARRIVAL_CV = 1e2  # coefficient of variation of Gamma inter-arrival gaps
MIN_ARRIVAL_CV = 1e-2
MAX_SAMPLES = 10_000  # utilization samples per mesh in one run (longer runs sample less often)
MAX_WINDOWS = 100_000  # rate_schedule windows of all LLMs of a workload together
MAX_PROFILE_ROWS = 1_000_000  # rows of a profile (and of one GPU's files in a Vidur tree)
MAX_VIDUR_MODELS = 256  # model folders of one GPU in a Vidur tree
MAX_VIDUR_ENTRIES = 4096  # entries of one folder of a Vidur tree looked at
MAX_NAME_CHARS = 200  # an LLM, model or column name
MAX_PATH_CHARS = 4096  # a path, or any other string field of a plan

# ---- files ------------------------------------------------------------------------------
MAX_JSON_BYTES = 16 << 20  # a workload, plan, parameter or config JSON document
MAX_TABLE_BYTES = 256 << 20  # a trace, request log or profile (CSV or JSON Lines; after decompression)
