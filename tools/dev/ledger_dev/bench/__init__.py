"""The bundle's performance benchmark: what it adds to the floor that Python and boto3 already cost.

    python -m ledger_dev.bench                 # every section, 7 repetitions; writes build/bench/PERFORMANCE.md
    python -m ledger_dev.bench --repeat 15     # more repetitions (medians are steadier)
    python -m ledger_dev.bench --skip-size --no-write

Every figure is a ratio against a floor measured in the same run (medians of ``--repeat`` runs, floor and
function runs interleaved so that the machine's load hits both alike):

- cold init: a fresh interpreter imports the handler module with the function's environment from
  ``template.yaml`` (layer and function folders first on ``sys.path``, as ``/opt/python`` and ``/var/task``)
  vs a fresh interpreter that imports boto3 and creates the clients that function uses; peak RSS alike. The
  same processes then make a first invocation (webhooks: the first seed event, DynamoDB and Secrets Manager
  answered by botocore's Stubber) vs ``json.loads`` + one ``put_item``, so work deferred past init shows;
- warm cost per event: the handler invoked with every seed event of ``events/`` (DynamoDB answered by the
  Stubber, the secret cached by Powertools) vs ``json.loads`` of the body plus one ``put_item`` through the same
  stub, and vs a reachable floor: that plus the HMAC check and the payload's validation, which any handler
  meeting the spec must pay;
- capacity per delivery: the seed deliveries through the handlers against moto, the table read before and after
  each one: bytes written, base-table write units (1 KB each, the larger of the old and new item, transactional
  writes count double) and, apart, the index writes DynamoDB adds;
- worker: a batch of 10 rollbacks against the fake Voucherify answering in 100 ms vs one rollback; and 200
  requests drained from the queue by ``ROLLBACK_MAX_CONCURRENCY`` executions under a 600/min budget that the
  fake enforces (429 beyond it): the achieved rate vs the budget, and the 429s. The worker runs in the
  benchmark's process as in Lambda (its batch on threads); moto's server and the fake each run in a child
  process of their own, whose CPU time per run the batch figure reports;
- size: the layer as ``sam build`` makes it for python3.13/arm64 (platform wheels), unzipped and zipped, and
  each function's code.

One module per section (``cold``, ``warm``, ``capacity``, ``worker``, ``size``), the figures in ``report``, the seed
deliveries in ``seeds``; the programs timed in fresh interpreters are files of ``programs/`` (``children`` runs them).
"""

from ledger_dev.bench.capacity import (
    CallRecorder,
    Capacity,
    IndexDefinition,
    _key,
    attribute_size,
    call_read_units,
    delivery_capacity,
    index_write_units,
    item_size,
    measure_capacity,
    read_units,
    table_indexes,
    write_units,
)
from ledger_dev.bench.children import ChildScript, child_environment, run_child
from ledger_dev.bench.cold import child_script, measure_cold
from ledger_dev.bench.cost import PRICES, CostLine, Usage, cost_per_million, measure_cost
from ledger_dev.bench.e2e import measure_end_to_end
from ledger_dev.bench.report import TARGETS, Report, Row, format_row, markdown, median, ratio, verdict
from ledger_dev.bench.seeds import (
    COLD_FUNCTIONS,
    LEDGER_EVENTS_FUNCTION,
    RECONCILER_FUNCTION,
    WEBHOOK_FUNCTIONS,
    WORKER_FUNCTION,
    SeedEvent,
    raw_body,
    seed_events,
)
from ledger_dev.bench.size import measure_size
from ledger_dev.bench.textbook import TEXTBOOK_OF, load_textbook, textbook_dir
from ledger_dev.bench.warm import measure_warm
from ledger_dev.bench.worker import _sqs_event, measure_batch, measure_drain, measure_worker_capacity, worker_stack

__all__ = [
    "COLD_FUNCTIONS",
    "LEDGER_EVENTS_FUNCTION",
    "PRICES",
    "RECONCILER_FUNCTION",
    "TARGETS",
    "TEXTBOOK_OF",
    "WEBHOOK_FUNCTIONS",
    "WORKER_FUNCTION",
    "CallRecorder",
    "Capacity",
    "ChildScript",
    "CostLine",
    "IndexDefinition",
    "Report",
    "Row",
    "SeedEvent",
    "Usage",
    "_key",
    "_sqs_event",
    "attribute_size",
    "call_read_units",
    "child_environment",
    "child_script",
    "cost_per_million",
    "delivery_capacity",
    "format_row",
    "index_write_units",
    "item_size",
    "load_textbook",
    "markdown",
    "measure_batch",
    "measure_capacity",
    "measure_cold",
    "measure_cost",
    "measure_drain",
    "measure_end_to_end",
    "measure_size",
    "measure_warm",
    "measure_worker_capacity",
    "median",
    "ratio",
    "raw_body",
    "read_units",
    "run_child",
    "seed_events",
    "table_indexes",
    "textbook_dir",
    "verdict",
    "worker_stack",
    "write_units",
]
