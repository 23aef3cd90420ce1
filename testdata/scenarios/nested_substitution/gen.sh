#!/bin/sh
name=$(sed -n 1p name.txt)
echo "hello, $name" > greeting.txt
