#!/usr/bin/env bash
# Local Kafka and Redis together: start | stop | status.
# Same environment variables as kafka.sh and redis.sh. start reuses what already answers;
# stop only stops what these scripts started.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-status}" in
  start) bash "$HERE/redis.sh" start; bash "$HERE/kafka.sh" start ;;
  stop) rc=0; bash "$HERE/kafka.sh" stop || rc=1; bash "$HERE/redis.sh" stop || rc=1; exit $rc ;;
  status) rc=0; bash "$HERE/redis.sh" status || rc=1; bash "$HERE/kafka.sh" status || rc=1; exit $rc ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
