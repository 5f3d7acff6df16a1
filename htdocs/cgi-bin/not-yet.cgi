#!/bin/sh
# Committed with mode 0644 on purpose: the server refuses to run it until `chmod 755`.
printf 'Content-Type: text/plain\r\n\r\n'
echo "Now I run: somebody gave me the execute bit."
