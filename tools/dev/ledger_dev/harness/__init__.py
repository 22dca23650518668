"""Runs the bundle's functions here as AWS runs them, for the local stack, the benchmark, the load test and the tests.

``template`` (what ``template.yaml`` defines), ``functions`` (a handler loaded from its ``CodeUri``), ``apigw`` (HTTP
API events and Lambda contexts), ``api_emulator`` (the HTTP API on loopback), ``queues`` (the template's queues in
SQS), ``sqs_poller`` (SQS → Lambda event source mapping), ``moto_patches`` (moto's server as the embedded AWS, and
the fixes it needs to stand in for DynamoDB under concurrency).
"""
