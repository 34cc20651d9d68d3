# KartStudio's homebrew N64 test ROM (our own code, MIT like the rest of the project).
#
# mupen64plus's high-level boot copies ROM bytes 0x40..0x1000 into SP DMEM and jumps to
# 0xA4000040, so this code runs straight from there: no IPL3, no linker, position independent
# (only relative branches, absolute addresses are hardware registers).
#
# Every vertical interrupt it reads controllers 1 and 2 through the PIF (SI DMA of a 64-byte
# command block with joybus command 0x01 per channel) and paints what it read on a 320x240
# 16-bit framebuffer: the top half from controller 1, the bottom half from controller 2.
# Each half has 5 bands of 24 rows: one per byte of the controller's reply, in order
# buttons (A B Z Start Dup Ddown Dleft Dright), buttons (reset 0 L R Cup Cdown Cleft Cright),
# stick x, stick y, then the low byte of the ROM's own frame counter (so a screenshot also shows
# that frames advance). A band is 8 cells of 40 pixels, one per bit, high bit on the left:
# "on" cells are green (controller 1) or yellow (controller 2), "off" cells dark blue.
# A picture of the screen therefore shows exactly the 32 bits the game read for each seat.

        .set    noat
        .set    reorder
        .text
        .globl  _start
_start:
        # No interrupts: clear IE in CP0 Status and mask every RCP interrupt.
        mfc0    $t0, $12
        li      $t1, 0xFFFFFFFE
        and     $t0, $t0, $t1
        mtc0    $t0, $12
        lui     $t0, 0xA430             # MI
        li      $t1, 0x0555             # clear all six interrupt mask bits
        sw      $t1, 0x0C($t0)

        # Video: 320x240, 16-bit colour, framebuffer at 0x00100000 (NTSC timings).
        lui     $t0, 0xA440             # VI
        li      $t1, 0x3202
        sw      $t1, 0x00($t0)          # STATUS
        lui     $t1, 0x0010
        sw      $t1, 0x04($t0)          # ORIGIN
        li      $t1, 320
        sw      $t1, 0x08($t0)          # WIDTH
        li      $t1, 0x200
        sw      $t1, 0x0C($t0)          # V_INTR
        li      $t1, 0x03E52239
        sw      $t1, 0x14($t0)          # TIMING
        li      $t1, 0x20D
        sw      $t1, 0x18($t0)          # V_SYNC
        li      $t1, 0xC15
        sw      $t1, 0x1C($t0)          # H_SYNC
        li      $t1, 0x0C150C15
        sw      $t1, 0x20($t0)          # H_SYNC_LEAP
        li      $t1, 0x006C02EC
        sw      $t1, 0x24($t0)          # H_VIDEO
        li      $t1, 0x002501FF
        sw      $t1, 0x28($t0)          # V_VIDEO
        li      $t1, 0x000E0204
        sw      $t1, 0x2C($t0)          # V_BURST
        li      $t1, 0x200
        sw      $t1, 0x30($t0)          # X_SCALE
        li      $t1, 0x400
        sw      $t1, 0x34($t0)          # Y_SCALE

        lui     $s0, 0xA008             # PIF command block, uncached RDRAM 0x00080000
        move    $s1, $zero              # frame counter

frame:
        # Wait for the next vertical interrupt (MI_INTR bit 3 is set even while masked),
        # then acknowledge it by writing VI_CURRENT: one controller read per video frame.
        lui     $t0, 0xA430
wait_vi:
        lw      $t1, 0x08($t0)
        andi    $t1, $t1, 0x08
        beqz    $t1, wait_vi
        lui     $t0, 0xA440
        sw      $zero, 0x10($t0)
        addiu   $s1, $s1, 1

        # Command block: channels 0 and 1 read the controller (0xFF pad, tx 1, rx 4, cmd 0x01,
        # 4 reply bytes), 0xFE ends the list, the last byte 0x01 tells the PIF to run it.
        li      $t1, 0xFF010401
        li      $t2, 0xFFFFFFFF
        sw      $t1, 0($s0)
        sw      $t2, 4($s0)
        sw      $t1, 8($s0)
        sw      $t2, 12($s0)
        li      $t1, 0xFE000000
        sw      $t1, 16($s0)
        sw      $zero, 20($s0)
        sw      $zero, 24($s0)
        sw      $zero, 28($s0)
        sw      $zero, 32($s0)
        sw      $zero, 36($s0)
        sw      $zero, 40($s0)
        sw      $zero, 44($s0)
        sw      $zero, 48($s0)
        sw      $zero, 52($s0)
        sw      $zero, 56($s0)
        li      $t1, 1
        sw      $t1, 60($s0)

        lui     $t0, 0xA480             # SI
        lui     $t3, 0x1FC0
        ori     $t3, $t3, 0x07C0        # PIF RAM
        lui     $t1, 0x0008
        sw      $t1, 0x00($t0)          # DRAM_ADDR
        sw      $t3, 0x10($t0)          # PIF_ADDR_WR64B: RDRAM -> PIF
wait_si_write:
        lw      $t2, 0x18($t0)
        andi    $t2, $t2, 0x03          # DMA or IO busy
        bnez    $t2, wait_si_write
        sw      $zero, 0x18($t0)        # clear the SI interrupt
        sw      $t1, 0x00($t0)          # DRAM_ADDR
        sw      $t3, 0x04($t0)          # PIF_ADDR_RD64B: PIF -> RDRAM (runs the commands)
wait_si_read:
        lw      $t2, 0x18($t0)
        andi    $t2, $t2, 0x03
        bnez    $t2, wait_si_read
        sw      $zero, 0x18($t0)

        # Paint: s2 walks the framebuffer, s3 = seat index 0/1.
        lui     $s2, 0xA010
        move    $s3, $zero
seat:
        sll     $t0, $s3, 3
        addu    $t0, $t0, $s0
        lw      $s4, 4($t0)             # the 4 reply bytes of this seat's channel
        li      $s5, 0x07C107C1         # controller 1 "on": green (two RGBA5551 pixels)
        beqz    $s3, colours_done
        li      $s5, 0xFFC1FFC1         # controller 2 "on": yellow
colours_done:
        li      $s6, 0x00110011         # "off": dark blue
        li      $s7, 5                  # bands
band:
        srl     $t8, $s4, 24            # this band's byte: the next reply byte ...
        sll     $s4, $s4, 8
        li      $t0, 1
        bne     $s7, $t0, rows
        andi    $t8, $s1, 0xFF          # ... or, in the last band, the frame counter
rows:
        li      $t9, 24                 # rows per band
row:
        move    $t7, $t8
        li      $t6, 8                  # cells per row
cell:
        andi    $t5, $t7, 0x80
        move    $t4, $s6
        beqz    $t5, fill
        move    $t4, $s5
fill:
        li      $t3, 20                 # 20 words = 40 pixels
word:
        sw      $t4, 0($s2)
        addiu   $s2, $s2, 4
        addiu   $t3, $t3, -1
        bnez    $t3, word
        sll     $t7, $t7, 1
        addiu   $t6, $t6, -1
        bnez    $t6, cell
        addiu   $t9, $t9, -1
        bnez    $t9, row
        addiu   $s7, $s7, -1
        bnez    $s7, band
        addiu   $s3, $s3, 1
        li      $t0, 2
        bne     $s3, $t0, seat
        b       frame
