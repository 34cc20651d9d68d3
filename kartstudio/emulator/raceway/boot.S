# KartStudio Raceway boot stub: lives in the cartridge's IPL3 area (ROM 0x40..0x1000).
# mupen64plus's HLE boot copies those bytes to SP DMEM and runs them at 0xA4000040, so this
# code must be position independent. It copies the program (ROM 0x1000 on) into RDRAM at
# 0x400 with one PI DMA and jumps to it. PROG_LEN is passed with --defsym by the builder.
        .set    noreorder
        .set    noat
        .text
        .globl  boot
boot:
        mfc0    $t0, $12                # no interrupts: the game polls MI_INTR instead
        li      $t1, 0xFFFFFFFE
        and     $t0, $t0, $t1
        mtc0    $t0, $12
        lui     $t0, 0xA430
        li      $t1, 0x0555             # mask every RCP interrupt
        sw      $t1, 0x0C($t0)

        lui     $t0, 0xA460             # PI
1:      lw      $t1, 0x10($t0)          # wait until the PI is idle
        andi    $t1, $t1, 3
        bnez    $t1, 1b
        nop
        li      $t1, 0x00000400
        sw      $t1, 0x00($t0)          # DRAM address
        li      $t1, 0x10001000
        sw      $t1, 0x04($t0)          # cartridge address
        li      $t1, PROG_LEN - 1
        sw      $t1, 0x0C($t0)          # WR_LEN: cartridge -> RDRAM, starts the DMA
2:      lw      $t1, 0x10($t0)
        andi    $t1, $t1, 3
        bnez    $t1, 2b
        nop
        li      $t1, 2
        sw      $t1, 0x10($t0)          # clear the PI interrupt
        lui     $t0, 0x8000
        ori     $t0, $t0, 0x0400
        jr      $t0
        nop
