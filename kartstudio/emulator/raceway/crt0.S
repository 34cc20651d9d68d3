# Program entry at 0x80000400 (the boot stub jumps here): stack, zeroed .bss, then main().
        .set    noreorder
        .section .text.entry, "ax"
        .globl  _start
_start:
        la      $sp, __stack_top
        la      $t0, __bss_start
        la      $t1, __bss_end
1:      sltu    $t2, $t0, $t1
        beqz    $t2, 2f
        nop
        sw      $zero, 0($t0)
        b       1b
        addiu   $t0, $t0, 4
2:      jal     main
        nop
3:      b       3b
        nop
