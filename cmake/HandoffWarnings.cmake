# Compiler flags for Handoff's own targets: a strict warning set, optional
# warnings-as-errors and sanitizers. Third-party code never sees these.

set(HANDOFF_C_WARNINGS
    -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wmissing-declarations -Wold-style-definition -Wformat=2 -Wvla
    -Wpointer-arith -Wwrite-strings -Wundef -Wimplicit-fallthrough
    -Wcast-align -Wnull-dereference -Wredundant-decls)

set(HANDOFF_SANITIZE_FLAGS "")
if(HANDOFF_SANITIZE)
    set(HANDOFF_SANITIZE_FLAGS -fsanitize=${HANDOFF_SANITIZE}
        -fno-omit-frame-pointer -fno-sanitize-recover=all)
    add_compile_options(${HANDOFF_SANITIZE_FLAGS})
    add_link_options(${HANDOFF_SANITIZE_FLAGS})
endif()

# handoff_target_flags(target): the project's warning set on one target.
function(handoff_target_flags target)
    target_compile_options(${target} PRIVATE ${HANDOFF_C_WARNINGS})
    if(HANDOFF_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
    target_compile_definitions(${target} PRIVATE _POSIX_C_SOURCE=200809L
        _DEFAULT_SOURCE)
endfunction()
