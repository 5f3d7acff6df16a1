#!/bin/sh
# The classic first CGI script: a header block, a blank line, then the body.
printf 'Content-Type: text/plain\r\n\r\n'
echo "Hello from a CGI script!"
echo "I ran as uid $(id -u) with the query string '${QUERY_STRING}'."
