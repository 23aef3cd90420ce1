# Used by .ci/run: picks the test results of one `bazel test` run out of its
# build event stream (--build_event_json_file).
# Input: the build event stream, slurped (-s). Output, one line per test run
# to count: "RESULT<TAB>status<TAB>xml path" for every shard and run of a test
# that ran (or was cached), its last attempt only, and "NORESULT<TAB>label" for
# every test target without any result (it did not build or did not run).
[.[] | select(.id.targetConfigured and .configured.testSize) | .id.targetConfigured.label] as $tests
| [.[] | select(.id.testResult)] as $results
| ($results
   | group_by([.id.testResult.label, .id.testResult.run, .id.testResult.shard])
   | .[] | max_by(.id.testResult.attempt)
   | ["RESULT", .testResult.status,
      ([.testResult.testActionOutput[]? | select(.name == "test.xml") | .uri
        | sub("^file://"; "")] | first // "")]
   | @tsv),
  ($tests - [$results[] | .id.testResult.label] | unique | .[] | ["NORESULT", .] | @tsv)
