#!/bin/sh
# Writes gen/out.h only if its contents change, as config.status does with
# config.h (which also names its temporary files after its pid).
sed -n 1p settings.txt > "new.$$.h"
if cmp -s "new.$$.h" gen/out.h; then rm "new.$$.h"; else mv "new.$$.h" gen/out.h; fi
