#!/bin/sh
# No command writes the pipe tr reads: echo is the shell's own.
read -r name < name.txt
upper=$(echo "$name" | tr a-z A-Z)
echo "hello, $upper" > greeting.txt
