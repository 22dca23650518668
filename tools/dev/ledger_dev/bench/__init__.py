"""The bundle's performance benchmark: what it adds to the floor that Python and boto3 already cost, and what it
costs against the textbook baseline a team would write from the Powertools documentation.

    python -m ledger_dev.bench                 # every section, 7 repetitions; writes build/bench/PERFORMANCE.md
    python -m ledger_dev.bench --repeat 15     # more repetitions (medians are steadier)
    python -m ledger_dev.bench --skip-size --no-write

Every figure is shown against a floor and, where the textbook does the same job, against the textbook (``textbook/``:
the webhook with ``APIGatewayHttpResolver``, the Powertools parser with the bundle's payload models,
``hmac.compare_digest``, Logger / Metrics / Tracer and ``@idempotent_function`` around a ``put_item`` of the raw
delivery; the worker with ``BatchProcessor`` and ``@idempotent_function`` around the rollback call, then a
``put_item``). All three are measured in the same run, medians of ``--repeat`` runs, the floor, the function and the
textbook interleaved so that the machine's load hits them alike. The bundle must cost at most the textbook (1×) on
every figure the textbook has:

- cold init: a fresh interpreter imports the handler module with the function's environment from
  ``template.yaml`` (layer and function folders first on ``sys.path``, as ``/opt/python`` and ``/var/task``)
  vs a fresh interpreter that imports boto3 and creates the clients that function uses, and vs the textbook's module;
  peak RSS alike; every function (the webhooks, the worker, the reconciler, the ledger-events function). The same
  processes then make a first invocation (webhooks: the first seed event, every AWS call answered in-process before
  it is sent) vs ``json.loads`` + one ``put_item``, so work deferred past init shows;
- warm cost per event: the handler invoked with every seed event of ``events/`` vs ``json.loads`` of the body plus
  one ``put_item`` through the same client, vs a reachable floor (that plus the HMAC check and the payload's
  validation, which any handler meeting the spec must pay), and vs the textbook webhook with every delivery new; all
  in one child, DynamoDB and Secrets Manager answered in-process (botocore's ``before-call``: requests built and
  serialized, never sent);
- capacity: the seed deliveries through the handlers and through the textbook (a table of its own) against moto,
  the table read before and after each one: DynamoDB calls, bytes written, write units (1 KB each, the larger of the
  old and new item, a failed condition billed by the item it checked, transactional writes and condition checks
  double), read units (4 KB each strongly consistent, half eventually consistent, double transactional) and, apart,
  the index writes DynamoDB adds; the ledger events each write publishes (``LedgerEventsFunction`` fed the stream
  records of the change) and the log bytes of every handler. The worker likewise: the real
  ``RollbackWorkerFunction`` handler and the textbook worker against moto's server and the fake Voucherify, for a new
  rollback of a recorded redemption and for the same message redelivered, whatever DynamoDB pattern the worker has;
- worker: a batch of 10 rollbacks against the fake Voucherify answering in 100 ms vs one rollback; and 200
  requests drained from the queue by ``ROLLBACK_MAX_CONCURRENCY`` executions under a 600/min budget that the
  fake enforces (429 beyond it): the achieved rate vs the budget, and the 429s. The worker runs in the
  benchmark's process as in Lambda (its batch on threads); moto's server and the fake each run in a child
  process of their own, whose CPU time per run the batch figure reports;
- end to end: deliveries a second from 8 senders (a process of their own) over HTTP through the local stack
  (``ledger_dev.local_stack``: the template's routes, moto's server), the bundle and the textbook in alternated
  rounds, and how the stack's CPU splits between the function and moto with the emulation;
- size: the layer as ``sam build`` makes it for python3.13/arm64 (platform wheels), unzipped and zipped, and
  each function's code;
- cost per million deliveries, worker rollbacks and reconciled objects, computed from this run's figures and the list
  prices of ``cost.PRICES`` (with their date); what the model assumes is ``cost.ASSUMED``, printed with the table.

One module per section (``cold``, ``warm``, ``capacity``, ``worker``, ``e2e``, ``size``, ``cost``), the figures in
``report``, the seed deliveries in ``seeds``, the ledger events and log bytes of a write in ``ledger_events``; the
programs timed in fresh interpreters or run in processes of their own are files of ``programs/`` (``children`` runs
them); the textbook baseline is ``textbook/``, never deployed.
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
